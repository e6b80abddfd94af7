"""Tests of attention.mechanism, one file per module."""
