"""A simulated Linky TIC line on a pseudo-terminal (``python -m simulators.tic``)."""

from simulators.tic.line import SentCounts, TicSimulator
from simulators.tic.meter import LinkyMeter

__all__ = ["LinkyMeter", "SentCounts", "TicSimulator"]
