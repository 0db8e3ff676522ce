"""A real sync hub in a subprocess, for the demo, the tests and the benchmarks.

``sync-server serve --port 0`` picks a free port and prints ``READY http://HOST:PORT`` once
it listens; this waits for that line, so callers never race the server's start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy import Engine

from sync_server.db.engine import create_hub_engine
from sync_server.keys import load_badge_seal, with_badge_seal
from sync_server.private_files import private_directory

__all__ = ["demo_engine", "spawn_hub", "stop_process"]


def spawn_hub(
    data_dir: Path, database_url: str | None = None, *, port: int = 0,
    serve_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[str, subprocess.Popen[str]]:
    """Start a demo-mode hub on 127.0.0.1 and return its base URL and process.

    ``serve_args`` go to ``sync-server serve`` as they are (``--tls-cert`` ...); ``env``
    adds to its environment (``PYTHONPATH`` of another checkout, to compare versions), and
    ``cwd`` is where it runs: that checkout too, since ``python -m`` puts its working
    directory first on the module path, before ``PYTHONPATH``.

    Its log goes to ``<data_dir>/hub.log`` (appended, so restarts keep the story): a pipe
    nobody reads would fill after a few tracebacks and freeze the hub. It runs in its own
    session, so a Ctrl-C meant for the demo does not stop it before the demo has read it.
    """
    environment = {**os.environ, **(env or {}), "PONTON_HUB_DATA_DIR": str(data_dir),
                   "PONTON_HUB_DEMO": "1"}
    environment.pop("PONTON_HUB_DATABASE_URL", None)
    if database_url is not None:
        environment["PONTON_HUB_DATABASE_URL"] = database_url
    private_directory(data_dir)
    log_path = data_dir / "hub.log"
    descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sync_server", "serve", "--port", str(port), *serve_args],
            stdout=subprocess.PIPE, stderr=log, text=True, env=environment, cwd=cwd,
            start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != ["READY"]:
        process.kill()
        process.communicate(timeout=30)
        tail = log_path.read_text(encoding="utf-8")[-2000:]
        raise RuntimeError(f"the hub did not start ({log_path}): {tail}")
    return line[1], process


def demo_engine(data_dir: Path, database_url: str | None = None) -> Engine:
    """The store of a demo-mode hub in ``data_dir`` (its ``hub.db`` unless ``database_url``),
    with the badge seal that hub finds there (created if missing): scripts register
    territories beside a running hub through it."""
    url = database_url or f"sqlite:///{data_dir / 'hub.db'}"
    seal = load_badge_seal(data_dir / "badge-seal.key", demo=True)
    return with_badge_seal(create_hub_engine(url), seal)


def stop_process(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    """Signal ``process`` (SIGKILL to simulate a crash) and wait for it; kill if it hangs."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
