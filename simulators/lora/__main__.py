"""``python -m simulators.lora``: simulated LoRaWAN uplinks through a ChirpStack integration."""

from simulators.lora.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
