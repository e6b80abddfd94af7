"""Tests of attention.application, one file per module."""
