"""The hub's web dashboard, served under ``/ui`` by the hub itself (docs/dashboard.md).

Server-rendered HTML (Jinja2), htmx for partial updates, Server-Sent Events for live data,
SVG charts drawn on the server, French and English catalogs. It reads through the same
query modules and the same territory rule as the JSON API: the territory comes from the
session, never from the URL.

- ``app``: the mounted application, its error pages and static files.
- ``web``: what pages share (viewer, roles, CSRF-checked forms, rendering).
- ``sessions``, ``accounts``: sign-in, sessions, argon2 passwords, one-time links.
- ``live``: SSE streams; ``i18n``: catalogs and formats; ``charts``: SVG.
- ``pages/``: one module per page, with its templates in ``templates/``.
"""

from __future__ import annotations

from sync_server.ui.app import create_ui

__all__ = ["create_ui"]
