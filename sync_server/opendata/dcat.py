"""A territory's catalogue in DCAT-AP (JSON-LD): what national portals harvest.

Every published dataset is listed with its licence (Licence Ouverte 2.0), its update
frequency (the EU's frequency vocabulary), and its distributions: URL and media type. NGSI-LD
distributions say which ``NGSILD-Tenant`` header to send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from sync_server.opendata.datasets import Dataset, published, territory_datasets

__all__ = ["LICENCE", "catalog"]

#: Licence Ouverte / Open Licence 2.0 (SPDX ``etalab-2.0``).
LICENCE = "https://www.etalab.gouv.fr/licence-ouverte-open-licence"
_MEDIA = "http://www.iana.org/assignments/media-types/"
_CONTEXT = {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
            "foaf": "http://xmlns.com/foaf/0.1/",
            "xsd": "http://www.w3.org/2001/XMLSchema#"}


def catalog(conn: Connection, territory: int, name: str, base_url: str) -> dict[str, Any]:
    """The DCAT-AP catalogue of territory ``name`` (id ``territory``)."""
    base = base_url.rstrip("/")
    enabled = territory_datasets(conn, territory)
    licence = {"@id": LICENCE, "@type": "dct:LicenseDocument",
               "dct:title": "Licence Ouverte / Open Licence version 2.0",
               "dct:identifier": "etalab-2.0"}
    return {
        "@context": _CONTEXT,
        "@id": f"{base}/v1/open/{name}/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": f"Données ouvertes : {name}",
        "dct:description": f"Open data published by territory {name} through its Ponton hub.",
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": name},
        "dct:language": {"@id": "http://publications.europa.eu/resource/authority/language/FRA"},
        "dct:license": licence,
        "dcat:dataset": [_dataset(d, name, base, licence, enabled[d.name]["enabled_ms"])
                         for d in published(conn, territory)],
    }


def _dataset(dataset: Dataset, territory: str, base: str, licence: dict[str, Any],
             issued_ms: int) -> dict[str, Any]:
    url = dataset.url(base, territory)
    distributions = [_distribution(dataset, url, dataset.media_type, territory, licence)]
    if dataset.tenant_header:
        distributions.append(_distribution(dataset, f"{url}&options=keyValues",
                                           "application/json", territory, licence))
    return {
        "@id": f"{base}/v1/open/{territory}/datasets/{dataset.name}",
        "@type": "dcat:Dataset",
        "dct:identifier": f"{territory}/{dataset.name}",
        "dct:title": dataset.title,
        "dct:description": dataset.description,
        "dct:license": licence,
        "dct:accrualPeriodicity": {"@id": dataset.frequency},
        "dct:issued": {"@type": "xsd:dateTime", "@value": datetime.fromtimestamp(
            issued_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "dcat:distribution": distributions,
    }


def _distribution(dataset: Dataset, url: str, media_type: str, territory: str,
                  licence: dict[str, Any]) -> dict[str, Any]:
    described = {"@type": "dcat:Distribution", "dct:title": f"{dataset.title} ({media_type})",
                 "dcat:accessURL": {"@id": url}, "dcat:mediaType": {"@id": _MEDIA + media_type},
                 "dct:license": licence}
    if dataset.tenant_header:
        described["dct:description"] = (f"NGSI-LD API: send the header NGSILD-Tenant: "
                                        f"{territory}")
    if dataset.downloadable and not dataset.tenant_header:
        described["dcat:downloadURL"] = {"@id": url}
    return described
