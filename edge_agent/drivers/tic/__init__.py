"""The Linky TIC: one line per meter, its labels mapped to the vocabulary, sampled."""

from edge_agent.drivers.tic.line import ModeSetting, TicHealth, TicLine, TicSettings
from edge_agent.drivers.tic.mapping import MappedFrame, map_frame
from edge_agent.drivers.tic.sampling import Sampler, SamplingPolicy

__all__ = ["MappedFrame", "ModeSetting", "Sampler", "SamplingPolicy", "TicHealth", "TicLine",
           "TicSettings", "map_frame"]
