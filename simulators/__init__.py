"""Hardware simulators for tests, benchmarks and the demo (``python -m simulators.<name>``)."""
