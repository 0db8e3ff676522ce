"""The datasets a territory may publish, and which ones its operators opted in.

Nothing is public by default: an operator enables each dataset for their territory. A dataset
that is not enabled and a territory that does not exist answer alike (NotFound), so the
public side never tells which territories exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from edge_agent.records import now_ms
from sync_server.db.schema import open_datasets, territories
from sync_server.errors import BadRequest, NotFound

__all__ = [
    "DATASETS",
    "UNPUBLISHED",
    "Dataset",
    "dataset",
    "dataset_rows",
    "disable",
    "enable",
    "published",
    "published_datasets",
    "published_territory",
    "territory_datasets",
    "territory_name",
]

#: What the public side answers for a dataset it does not serve, whatever the reason.
UNPUBLISHED = "no published dataset of that name for that territory"
#: admin.py's territory names: anything else names no territory, and never reaches SQL (a
#: NUL byte, which PostgreSQL text cannot hold, would fail there instead of answering 404).
_TERRITORY = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One publishable dataset: what it is, how often it changes, where it is served.

    ``path`` is relative to the hub's base URL, with ``{territory}`` for the territory's name;
    NGSI-LD datasets are served at one path for every territory, which the ``NGSILD-Tenant``
    header names (``tenant_header``). A dataset that needs a parameter to download (the
    services' month) has an access URL only (``downloadable`` False).
    """

    name: str
    title: str
    description: str
    media_type: str
    frequency: str
    path: str
    tenant_header: bool = False
    downloadable: bool = True

    def url(self, base_url: str, territory: str) -> str:
        """Where this dataset of ``territory`` is served."""
        return base_url.rstrip("/") + self.path.format(territory=territory)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("car-parks", "Lieux de stationnement",
            "Car parks in the French national schema (schema-stationnement 0.1.5): name, "
            "places, location and the fields the operator filled in.",
            "text/csv", _FREQUENCY + "IRREG", "/v1/open/{territory}/car-parks.csv"),
    Dataset("car-parks-live", "Disponibilité des parkings",
            "Live availability of each car park as NGSI-LD OffStreetParking entities "
            "(availableSpotNumber, totalSpotNumber, occupancy, observedAt).",
            "application/ld+json", _FREQUENCY + "UPDATE_CONT",
            "/ngsi-ld/v1/entities?type=OffStreetParking", tenant_header=True),
    Dataset("water", "Niveaux et débits d'eau",
            "Water level and flow sensors as NGSI-LD WaterObserved entities, latest values.",
            "application/ld+json", _FREQUENCY + "UPDATE_CONT",
            "/ngsi-ld/v1/entities?type=WaterObserved", tenant_header=True),
    Dataset("air-quality", "Qualité de l'air",
            "Air quality sensors as NGSI-LD AirQualityObserved entities, latest values.",
            "application/ld+json", _FREQUENCY + "UPDATE_CONT",
            "/ngsi-ld/v1/entities?type=AirQualityObserved", tenant_header=True),
    Dataset("energy-monthly", "Énergie mensuelle par site",
            "Active energy imported per site and month (kWh), from the sites' meters.",
            "text/csv", _FREQUENCY + "MONTHLY", "/v1/open/{territory}/energy-monthly.csv"),
    Dataset("services", "Fréquentation des services",
            "Uses of each service by holder category and hour of the day, k-anonymous, "
            "per ended month (add ?month=YYYY-MM).",
            "application/json", _FREQUENCY + "MONTHLY", "/v1/open/{territory}/services",
            downloadable=False),
)}


def dataset(name: str) -> Dataset:
    """The dataset called ``name``; BadRequest naming the known ones otherwise."""
    found = DATASETS.get(name)
    if found is None:
        raise BadRequest(f"no dataset {name[:40]!r}; known: {', '.join(DATASETS)}",
                         code="unknown_dataset")
    return found


def enable(engine: Engine, territory: int, name: str, *, by: str) -> bool:
    """Publish dataset ``name`` for ``territory``; False if it was published already."""
    dataset(name)
    with engine.begin() as conn:
        if name in territory_datasets(conn, territory):
            return False
        conn.execute(insert(open_datasets).values(territory_id=territory, dataset=name,
                                                  enabled_ms=now_ms(), enabled_by=by[:64]))
    return True


def disable(engine: Engine, territory: int, name: str) -> bool:
    """Stop publishing dataset ``name``; False if it was not published."""
    dataset(name)
    with engine.begin() as conn:
        done = conn.execute(delete(open_datasets).where(
            open_datasets.c.territory_id == territory, open_datasets.c.dataset == name))
    return done.rowcount > 0


def territory_datasets(conn: Connection, territory: int) -> dict[str, dict[str, Any]]:
    """Each dataset ``territory`` publishes: when and by whom it was enabled."""
    rows = conn.execute(select(open_datasets.c.dataset, open_datasets.c.enabled_ms,
                               open_datasets.c.enabled_by)
                        .where(open_datasets.c.territory_id == territory))
    return {row.dataset: {"enabled_ms": row.enabled_ms, "enabled_by": row.enabled_by}
            for row in rows}


def territory_name(conn: Connection, territory: int) -> str:
    """The name of territory ``territory`` (an id from a token: it exists)."""
    return str(conn.execute(select(territories.c.name)
                            .where(territories.c.id == territory)).scalar_one())


def published_territory(conn: Connection, territory: str, *names: str) -> int:
    """The id of ``territory`` if it publishes one of ``names`` (any dataset if none named).

    NotFound otherwise, with the same words whether the territory is unknown or keeps the
    dataset unpublished.
    """
    if not _TERRITORY.fullmatch(territory):
        raise NotFound(UNPUBLISHED)
    query = (select(territories.c.id)
             .join(open_datasets, open_datasets.c.territory_id == territories.c.id)
             .where(territories.c.name == territory).limit(1))
    if names:
        query = query.where(open_datasets.c.dataset.in_(names))
    found = conn.execute(query).scalar()
    if found is None:
        raise NotFound(UNPUBLISHED)
    return int(found)


def published(conn: Connection, territory: int) -> list[Dataset]:
    """The datasets ``territory`` publishes, in catalogue order."""
    enabled = territory_datasets(conn, territory)
    return [d for name, d in DATASETS.items() if name in enabled]


def dataset_rows(conn: Connection, territory: int, territory_name: str,
                 base_url: str) -> list[dict[str, Any]]:
    """Every dataset for an operator: published or not, since when, by whom, where."""
    enabled = territory_datasets(conn, territory)
    return [{"dataset": d.name, "title": d.title, "published": d.name in enabled,
             **enabled.get(d.name, {"enabled_ms": None, "enabled_by": None}),
             "url": d.url(base_url, territory_name),
             "tenant": territory_name if d.tenant_header else None}
            for d in DATASETS.values()]


def published_datasets(conn: Connection, territory: int, territory_name: str,
                       base_url: str) -> list[dict[str, str]]:
    """What a territory's "Open data" page lists: each published dataset and its URL,
    plus the catalogue's, for the dashboard (``base_url`` is the hub's public address)."""
    rows = [{"name": d.name, "title": d.title, "media_type": d.media_type,
             "url": d.url(base_url, territory_name),
             "tenant": territory_name if d.tenant_header else ""}
            for d in published(conn, territory)]
    if rows:
        rows.insert(0, {"name": "catalog", "title": "Catalogue DCAT-AP",
                        "media_type": "application/ld+json",
                        "url": f"{base_url.rstrip('/')}/v1/open/{territory_name}/catalog.jsonld",
                        "tenant": ""})
    return rows
