"""How ``sync-server serve`` runs: one process, or N uvicorn workers on one socket.

The hub is stateless between requests, so workers share nothing but the database. Each
worker is a fresh interpreter (uvicorn spawns them): it cannot inherit the settings the
command line built, so they travel as JSON in ``PONTON_HUB_WORKER_SETTINGS`` and every
worker builds its app from them (``worker_app``, the factory uvicorn imports by name).

Behind a reverse proxy, ``forwarded_allow_ips`` names the proxies whose ``X-Forwarded-For``
and ``X-Forwarded-Proto`` are believed: the client address the enrollment rate limit counts
and the scheme of the URLs the hub builds. Without it both headers are ignored, so no
client can pick the address it is counted under.

HTTP is parsed by httptools and the event loop is uvloop (both C, both in the ``hub``
extra): with uvicorn's pure-Python parser and loop, reading requests cost a busy hub more
CPU than decoding its batches (docs/benchmarks.md, "Round three").

With ``tls`` the hub serves HTTPS itself (uvicorn's ``ssl_*`` settings, loaded again by each
worker); with a client CA it requires every client to present a certificate that CA signed
(mutual TLS for gateways), and refuses the handshake otherwise.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from edge_agent.codecs.log_lines import JsonLineFormatter
from sync_server.app import create_app
from sync_server.errors import SettingsError
from sync_server.metrics import MULTIPROCESS_VARIABLE
from sync_server.settings import HubSettings

__all__ = [
    "LOG_FORMAT_VARIABLE",
    "SETTINGS_VARIABLE",
    "HubTls",
    "log_to_stderr",
    "serve",
    "worker_app",
]

#: Where a worker finds the settings of the command that started it.
SETTINGS_VARIABLE = "PONTON_HUB_WORKER_SETTINGS"
#: ``plain`` or ``json``: the log format of the command, and of its workers.
LOG_FORMAT_VARIABLE = "PONTON_HUB_LOG_FORMAT"


@dataclass(frozen=True, slots=True)
class HubTls:
    """The hub's certificate and key, and the CA its clients' certificates must come from."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def uvicorn_settings(self) -> dict[str, object]:
        """uvicorn.Config's ``ssl_*`` arguments; SettingsError now if a file does not load."""
        settings: dict[str, object] = {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}
        if self.client_ca is not None:
            settings |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"--tls-cert {self.cert} with --tls-key {self.key}: cannot load "
                                f"them ({exc})") from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(self.client_ca)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"--tls-client-ca {self.client_ca}: cannot load it "
                                    f"({exc})") from None
        return settings


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, before READY: a client may connect the moment it reads that line.

    IPPROTO_TCP spelt out: asyncio sets TCP_NODELAY only on sockets that say so, and without
    it every kept-alive request waited out the client's 40 ms delayed ACK.
    """
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:  # in use, not ours to take (< 1024), no such address
        sock.close()
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def log_to_stderr() -> None:
    """The hub's own lines (acknowledgements at INFO, unexpected errors) on stderr, one
    plain line each, or one JSON object each (``PONTON_HUB_LOG_FORMAT=json``, uvicorn's
    warnings too); uvicorn keeps its own loggers at warnings."""
    handler = logging.StreamHandler(sys.stderr)
    if _json_logs():
        handler.setFormatter(JsonLineFormatter())
        logging.getLogger("uvicorn").addHandler(handler)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    hub_log = logging.getLogger("sync_server")
    hub_log.addHandler(handler)
    hub_log.setLevel(logging.INFO)


def _json_logs() -> bool:
    return os.environ.get(LOG_FORMAT_VARIABLE, "plain") == "json"


def _settle_heap() -> None:
    """Everything loaded so far lives as long as the process: freezing it keeps the cyclic
    collector from rescanning it while batches allocate by the thousand (py-spy showed a
    fifth of ingest time in collections at an innocent list comprehension)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _metrics_files() -> Iterator[None]:
    """Where the workers count (sync_server/metrics.py), so that any worker's /metrics sums
    them all: ``PROMETHEUS_MULTIPROC_DIR`` if the operator set it, else a fresh directory
    removed at exit (stale files would add a previous run's counts)."""
    if os.environ.get(MULTIPROCESS_VARIABLE):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ponton-metrics-") as directory:
        os.environ[MULTIPROCESS_VARIABLE] = directory
        yield


def worker_app() -> FastAPI:
    """The app of one worker process, from the settings its parent left in the environment."""
    try:
        settings = HubSettings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    except KeyError:
        raise SettingsError(f"{SETTINGS_VARIABLE} is not set: start workers with "
                            "`sync-server serve --workers N`") from None
    log_to_stderr()
    application = create_app(settings)
    _settle_heap()
    return application


def serve(settings: HubSettings, host: str, port: int, *, workers: int = 1,
          forwarded_allow_ips: str | None = None, tls: HubTls | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C, in this process or in ``workers`` ones.

    Prints ``READY http://HOST:PORT`` (https with ``tls``) once the socket listens and the
    app has been built once: what every worker would refuse (no signing key, an old schema,
    a certificate that does not load) is refused here, before anything is spawned.
    """
    ssl_settings = tls.uvicorn_settings() if tls is not None else {}
    application = create_app(settings)
    sock = _listen(host, port)
    if workers > 1:
        # The supervisor serves nothing: its connections would sit idle for months.
        application.state.hub.engine.dispose()
        os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    config = uvicorn.Config(
        "sync_server.serving:worker_app" if workers > 1 else application,
        factory=workers > 1, workers=workers, log_level="warning", access_log=False,
        http="httptools", loop="uvloop",
        timeout_graceful_shutdown=5, log_config=None if _json_logs() else LOGGING_CONFIG,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips, **ssl_settings)  # type: ignore[arg-type]
    _settle_heap()
    scheme = "https" if tls is not None else "http"
    print(f"READY {scheme}://{host}:{sock.getsockname()[1]}", flush=True)  # noqa: T201 - the line tests wait for
    if workers > 1:
        with _metrics_files():
            Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
