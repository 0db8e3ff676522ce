"""Offline access control: decisions from the signed policy, gates, pedestal sessions."""
