"""Edge rules: readings → alarms → local actions, on the gateway alone (docs/rules.md)."""
