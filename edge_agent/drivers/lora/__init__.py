"""LoRaWAN sensors through a ChirpStack v4 MQTT integration."""
