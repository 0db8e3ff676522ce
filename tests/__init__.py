"""Ponton test suite."""
