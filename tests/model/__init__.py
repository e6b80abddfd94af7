"""Tests of attention.model, one file per module."""
