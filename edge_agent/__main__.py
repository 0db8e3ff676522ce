"""``python -m edge_agent``: the same command line as ``edge-agent``."""

from edge_agent.launcher import main

main()
