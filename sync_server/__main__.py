"""``python -m sync_server`` runs the hub CLI."""

from sync_server.entry import main

main()
