"""What open data says about a device that no gateway sends: where it is, its public name
and, for a car park, the national schema's fields (schema-stationnement 0.1.5).

Gateways send counts and measurements; the national car-park file and the NGSI-LD entities
also need a location, and the file needs the national id, the INSEE code, the operator's
SIRET and the like. The operator sets them per device (``sync-server opendata place set`` or
``PUT /v1/open-data/places/{gateway}/{device}``); a device whose required fields are missing is
left out of the dataset that needs them, never published with holes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine, insert, select, update

from edge_agent.records import now_ms
from sync_server.db.schema import gateways, open_data_places
from sync_server.errors import BadRequest, NotFound

__all__ = ["CAR_PARK_REQUIRED", "Place", "PlaceUpdate", "missing_for_car_park", "parse_update",
           "places", "set_place"]

#: National schema fields the operator must give before a car park is in the file.
CAR_PARK_REQUIRED = ("national_id", "insee", "users", "free", "max_height", "siret",
                     "longitude", "latitude")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char) * (2 if position % 2 else 1)
        total += number - 9 if number > 9 else number
    return total % 10 == 0


class PlaceUpdate(BaseModel):
    """Fields to set on a place; a field left out keeps its value, ``null`` clears it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str | None, Field(max_length=128)] = None
    longitude: Annotated[float | None, Field(ge=-180, le=180)] = None
    latitude: Annotated[float | None, Field(ge=-90, le=90)] = None
    address: Annotated[str | None, Field(max_length=256)] = None
    url: Annotated[str | None, Field(max_length=256, pattern=r"^https?://\S+$")] = None
    #: The national access point's id: INSEE code, ``-P-``, three digits.
    national_id: Annotated[str | None, Field(
        pattern=r"^([013-9]\d|2[AB1-9])\d{3}-P-\d{3}$")] = None
    insee: Annotated[str | None, Field(pattern=r"^([013-9]\d|2[AB1-9])\d{3}$")] = None
    users: Literal["tous", "abonnés"] | None = None
    free: bool | None = None
    #: Centimetres, or N/A when nothing limits the height.
    max_height: Annotated[str | None, Field(pattern=r"^(\d{1,4}|N/A)$")] = None
    siret: Annotated[str | None, Field(pattern=r"^\d{14}$")] = None
    disabled_spaces: Annotated[int | None, Field(ge=0, le=100_000)] = None
    ev_spaces: Annotated[int | None, Field(ge=0, le=100_000)] = None
    structure: Literal["enclos_en_surface", "ouvrage"] | None = None
    info: Annotated[str | None, Field(max_length=512)] = None

    @field_validator("siret")
    @classmethod
    def _siret_checksum(cls, value: str | None) -> str | None:
        """The schema's ``french-siret-value`` check: a Luhn checksum (La Poste's
        establishments, SIREN 356000000, sum their digits to a multiple of 5 instead)."""
        if value is None or _luhn(value):
            return value
        if value.startswith("356000000") and sum(map(int, value)) % 5 == 0:
            return value
        raise ValueError("not a SIRET number: its check digit is wrong")


Place = dict[str, Any]


def parse_update(fields: dict[str, Any]) -> PlaceUpdate:
    """``fields`` checked as a PlaceUpdate; BadRequest naming each wrong field."""
    try:
        return PlaceUpdate.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise BadRequest(problems, code="invalid_place") from None


def set_place(engine: Engine, territory: int, gateway: str, device: str,
              change: PlaceUpdate) -> Place:
    """Merge ``change`` into the place of ``gateway``/``device`` (created if new)."""
    if not device.isprintable() or not gateway.isprintable():
        raise BadRequest("gateway and device names hold no control characters",
                         code="invalid_place")
    given = change.model_dump(exclude_unset=True)
    with engine.begin() as conn:
        gateway_id = conn.execute(select(gateways.c.id).where(
            gateways.c.territory_id == territory, gateways.c.name == gateway)).scalar()
        if gateway_id is None:
            raise NotFound("no gateway of that name in this territory")
        where = ((open_data_places.c.gateway_id == gateway_id)
                 & (open_data_places.c.device == device))
        row = conn.execute(select(open_data_places.c.longitude, open_data_places.c.latitude,
                                  open_data_places.c.details).where(where)).first()
        current = {} if row is None else {"longitude": row.longitude,
                                          "latitude": row.latitude, **json.loads(row.details)}
        merged = {k: v for k, v in {**current, **given}.items() if v is not None}
        values = {"longitude": merged.pop("longitude", None),
                  "latitude": merged.pop("latitude", None),
                  "details": json.dumps(merged, sort_keys=True), "updated_ms": now_ms()}
        if row is None:
            conn.execute(insert(open_data_places).values(
                territory_id=territory, gateway_id=gateway_id, device=device, **values))
        else:
            conn.execute(update(open_data_places).where(where).values(**values))
    return {"gateway": gateway, "device": device, "longitude": values["longitude"],
            "latitude": values["latitude"], **merged}


def places(conn: Connection, territory: int) -> dict[tuple[str, str], Place]:
    """Every place the operators described in ``territory``, by (gateway, device)."""
    rows = conn.execute(
        select(gateways.c.name, open_data_places.c.device, open_data_places.c.longitude,
               open_data_places.c.latitude, open_data_places.c.details)
        .join_from(open_data_places, gateways, open_data_places.c.gateway_id == gateways.c.id)
        .where(open_data_places.c.territory_id == territory)
        .order_by(gateways.c.name, open_data_places.c.device))
    return {(row.name, row.device): {"gateway": row.name, "device": row.device,
                                     "longitude": row.longitude, "latitude": row.latitude,
                                     **json.loads(row.details)} for row in rows}


def missing_for_car_park(place: Place | None) -> list[str]:
    """The required national fields ``place`` lacks (all of them when there is no place)."""
    return [name for name in CAR_PARK_REQUIRED if place is None or place.get(name) is None]
