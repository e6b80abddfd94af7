"""Tests of attention.data, one file per module."""
