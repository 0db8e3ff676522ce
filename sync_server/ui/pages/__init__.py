"""The dashboard's pages, one module each.

Each module has a ``router`` (paths relative to ``/ui``) and, if it belongs in the menu,
a ``NAV`` entry naming the roles that see it. ``PAGES`` is the menu's order. To add a page,
see docs/dashboard.md ("Adding a page").
"""

from __future__ import annotations

from types import ModuleType

from sync_server.ui.pages import (
    access,
    alarms,
    badges,
    car_parks,
    device,
    gateway,
    marina,
    open_data,
    overview,
    signin,
)

__all__ = ["PAGES"]

PAGES: tuple[ModuleType, ...] = (overview, alarms, gateway, device, car_parks, marina, access,
                                 badges, open_data, signin)
