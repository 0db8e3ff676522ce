"""Helpers shared by tests: scripts run as subprocesses and the data they write."""
