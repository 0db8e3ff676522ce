"""Open data routes: the public files and catalogue of each territory (no token), NGSI-LD
live data (sync_server/opendata/ngsi_api.py), and the operator's opt-in and place details.

Public routes answer 404 alike for a territory that does not exist and for a dataset it does
not publish. Operators act on their own territory only (the token says which).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from sqlalchemy import Connection

from sync_server.api.access import Territory
from sync_server.api.context import State, Token
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.opendata import datasets, ngsi_api
from sync_server.opendata.caching import STATIC_MAX_AGE_S, cached
from sync_server.opendata.dcat import catalog
from sync_server.opendata.energy import energy_csv
from sync_server.opendata.places import parse_update, set_place
from sync_server.opendata.stationnement import car_park_rows, car_parks_csv

__all__ = ["router"]

router = APIRouter(tags=["open data"], route_class=DoorRoute)
router.include_router(ngsi_api.router)

_Name = Annotated[str, Path(max_length=128)]


def _base(request: Request) -> str:
    return str(request.base_url)


@router.get("/v1/open/{territory}/catalog.jsonld", response_model=None,
            responses={200: {"content": {"application/ld+json": {}}}})
def open_catalog(territory: _Name, request: Request, state: State) -> Response:
    """The territory's DCAT-AP catalogue of every dataset it publishes."""
    with reading(state.engine) as conn:
        found = datasets.published_territory(conn, territory)
        document = catalog(conn, found, territory, _base(request))
    body = json.dumps(document, ensure_ascii=False, indent=1).encode()
    return cached(request, body, "application/ld+json", max_age_s=STATIC_MAX_AGE_S)


@router.get("/v1/open/{territory}/car-parks.csv", response_model=None,
            responses={200: {"content": {"text/csv": {}}}})
def open_car_parks(territory: _Name, request: Request, state: State) -> Response:
    """Car parks in the national schema (schema-stationnement), complete ones only."""
    return _csv(request, state, territory, "car-parks", car_parks_csv)


@router.get("/v1/open/{territory}/energy-monthly.csv", response_model=None,
            responses={200: {"content": {"text/csv": {}}}})
def open_energy(territory: _Name, request: Request, state: State) -> Response:
    """Active energy imported per site over the last twelve ended months."""
    return _csv(request, state, territory, "energy-monthly", energy_csv)


def _csv(request: Request, state: State, territory: str, dataset: str,
         build: Callable[[Connection, int], str]) -> Response:
    with reading(state.engine) as conn:
        text = build(conn, datasets.published_territory(conn, territory, dataset))
    return cached(request, text.encode(), "text/csv; charset=utf-8",
                  max_age_s=STATIC_MAX_AGE_S)


@router.get("/v1/open-data")
def list_datasets(territory: Territory, request: Request, state: State) -> dict[str, Any]:
    """Every dataset the territory may publish: whether it does, since when, where."""
    with reading(state.engine) as conn:
        name = datasets.territory_name(conn, territory)
        return {"territory": name,
                "datasets": datasets.dataset_rows(conn, territory, name, _base(request))}


@router.put("/v1/open-data/{dataset}")
def enable_dataset(dataset: Annotated[str, Path(max_length=64)], territory: Territory,
                   token: Token, state: State) -> dict[str, Any]:
    """Publish a dataset of the territory (idempotent)."""
    changed = datasets.enable(state.engine, territory, dataset, by=token.name)
    return {"dataset": dataset, "published": True, "changed": changed}


@router.delete("/v1/open-data/{dataset}")
def disable_dataset(dataset: Annotated[str, Path(max_length=64)], territory: Territory,
                    state: State) -> dict[str, Any]:
    """Stop publishing a dataset (idempotent)."""
    changed = datasets.disable(state.engine, territory, dataset)
    return {"dataset": dataset, "published": False, "changed": changed}


@router.get("/v1/open-data/car-parks")
def list_car_park_places(territory: Territory, state: State) -> dict[str, Any]:
    """Each car park with the details the operator gave and what the national file lacks."""
    with reading(state.engine) as conn:
        return {"car_parks": car_park_rows(conn, territory)}


@router.put("/v1/open-data/places/{gateway}/{device:path}")
def update_place(
    gateway: Annotated[str, Path(max_length=64)], device: _Name, territory: Territory,
    state: State, fields: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """Set a device's public details (location, name, national car-park fields); fields
    left out keep their value, ``null`` clears one."""
    return set_place(state.engine, territory, gateway, device, parse_update(fields))

