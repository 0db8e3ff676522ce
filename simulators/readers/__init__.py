"""Simulated badge readers on pseudo-terminals (``python -m simulators.readers``)."""

from simulators.readers.cards import CardReaderSimulator, Pn532Simulator, StreamProtocol
from simulators.readers.pty_port import PtyDevice, PtyPort

__all__ = ["CardReaderSimulator", "Pn532Simulator", "PtyDevice", "PtyPort", "StreamProtocol"]
