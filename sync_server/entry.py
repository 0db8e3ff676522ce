"""The ``sync-server`` entry point: one clear line on a machine without the hub's packages.

A gateway installs ``ponton`` alone (the agent); the hub's server and stores come with the
``hub`` extra. Without it, ``sync-server`` would die on an import traceback; it says what
to install instead.
"""

from __future__ import annotations

import sys

__all__ = ["HUB_ONLY_MODULES", "main"]

#: Top-level modules that only ``pip install 'ponton[hub]'`` brings (the agent never imports
#: them: tests/test_packaging.py checks it).
HUB_ONLY_MODULES = frozenset({"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic",
                              "psycopg", "psycopg_binary"})


def main() -> None:
    """Run the hub's CLI, or refuse in one line when the ``hub`` extra is missing."""
    try:
        from sync_server.cli import main as cli_main  # noqa: PLC0415 - the import is the test
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in HUB_ONLY_MODULES:
            raise
        print(f"error: sync-server needs the hub's packages ({exc.name} is not installed): "  # noqa: T201
              "pip install 'ponton[hub]'", file=sys.stderr)
        sys.exit(2)
    cli_main()
