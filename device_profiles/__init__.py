"""Device profiles shipped with Ponton: one YAML file per device model (see README.md)."""
