"""Car parks as the French national file (schema-stationnement 0.1.5, a Table Schema).

Counts come from the hub (``car_parks``: the latest capacity is ``nb_places``); the rest from
what the operator described (``places``). A car park lacking a required field is left out, so
the file always validates; ``sync-server opendata place list`` says what each one lacks.
Columns the hub knows nothing about (tariffs, bicycle and car-sharing places …) stay empty:
the schema allows it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import Connection

from sync_server.car_parks import car_parks
from sync_server.opendata.places import Place, missing_for_car_park, places
from sync_server.queries import Scope

__all__ = ["COLUMNS", "car_park_rows", "car_parks_csv"]

#: The schema's fields, in its order.
COLUMNS = ("id", "nom", "insee", "adresse", "url", "type_usagers", "gratuit", "nb_places",
           "nb_pr", "nb_pmr", "nb_voitures_electriques", "nb_velo", "nb_2r_el",
           "nb_autopartage", "nb_2_rm", "nb_covoit", "hauteur_max", "num_siret", "Xlong",
           "Ylat", "tarif_pmr", "tarif_1h", "tarif_2h", "tarif_3h", "tarif_4h", "tarif_24h",
           "abo_resident", "abo_non_resident", "type_ouvrage", "info")


def car_park_rows(conn: Connection, territory: int) -> list[dict[str, Any]]:
    """Each car park of ``territory`` with its place and what keeps it out of the file."""
    described = places(conn, territory)
    rows = []
    for park in car_parks(conn, Scope(territory)):
        place = described.get((park["gateway"], park["car_park"]))
        missing = missing_for_car_park(place)
        if park["capacity"] is None:
            missing.append("capacity (no parking_capacity reading yet)")
        rows.append({"gateway": park["gateway"], "car_park": park["car_park"],
                     "capacity": park["capacity"], "place": place or {}, "missing": missing})
    return rows


def car_parks_csv(conn: Connection, territory: int) -> str:
    """The national file of ``territory``'s complete car parks, by national id."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    complete = [row for row in car_park_rows(conn, territory) if not row["missing"]]
    for row in sorted(complete, key=lambda r: str(r["place"]["national_id"])):
        writer.writerow(_line(row["place"], row["car_park"], row["capacity"]))
    return out.getvalue()


def _line(place: Place, device: str, capacity: int) -> dict[str, Any]:
    return {"id": place["national_id"], "nom": place.get("name") or device,
            "insee": place["insee"], "adresse": place.get("address", ""),
            "url": place.get("url", ""), "type_usagers": place["users"],
            "gratuit": "true" if place["free"] else "false", "nb_places": capacity,
            "nb_pmr": place.get("disabled_spaces", ""),
            "nb_voitures_electriques": place.get("ev_spaces", ""),
            "hauteur_max": place["max_height"], "num_siret": place["siret"],
            "Xlong": f"{place['longitude']:.6f}", "Ylat": f"{place['latitude']:.6f}",
            "type_ouvrage": place.get("structure", ""), "info": place.get("info", "")}
