"""HTTP routes of the hub: public (health, enrollment), gateway, operator."""
