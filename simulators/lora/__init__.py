"""Simulated LoRaWAN sensors behind a simulated ChirpStack MQTT integration."""
