"""Tests of attention.inspection, one file per module."""
