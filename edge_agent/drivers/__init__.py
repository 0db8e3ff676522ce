"""Drivers: one package per protocol, each owning its transport and producing records."""
