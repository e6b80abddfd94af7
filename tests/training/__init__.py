"""Tests of attention.training, one file per module."""
