"""``sync-server opendata``: which datasets a territory publishes, and the public details of
its places (docs/open-data.md).

Publishing is an operator's decision per dataset; ``place set`` gives what gateways do not
send (location, national car-park fields). The terminal acts as ``--by`` (default: the login
name), which the listing shows as who enabled a dataset.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from sync_server.admin import territory_id
from sync_server.cli_output import JsonFlag, minute, print_json, print_table
from sync_server.cli_support import hub_engine
from sync_server.db.engine import reading
from sync_server.opendata import datasets
from sync_server.opendata.places import parse_update, set_place
from sync_server.opendata.stationnement import car_park_rows

__all__ = ["opendata_app"]

opendata_app = typer.Typer(help="Open data: datasets a territory publishes, place details.",
                           no_args_is_help=True)
place_app = typer.Typer(help="Public details of car parks and sensors.", no_args_is_help=True)
opendata_app.add_typer(place_app, name="place")

_Territory = Annotated[str, typer.Option(help="Territory name.")]
_Dataset = Annotated[str, typer.Argument(metavar="DATASET",
                                         help=f"One of: {', '.join(datasets.DATASETS)}.")]
_BASE_URL = "http://127.0.0.1:8600"


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "sync-server"


def _territory(territory: str) -> int:
    with reading(hub_engine()) as conn:
        return territory_id(conn, territory)


@opendata_app.command("list")
def opendata_list(
    territory: _Territory,
    base_url: Annotated[str, typer.Option(help="The hub's public address, for the URLs.")]
    = _BASE_URL,
    as_json: JsonFlag = False,
) -> None:
    """Every dataset: published or not, since when, by whom, and its URL."""
    tid = _territory(territory)
    with reading(hub_engine()) as conn:
        rows = datasets.dataset_rows(conn, tid, territory, base_url)
    if as_json:
        print_json(rows)
        return
    print_table(("dataset", "published", "since", "by", "url"),
                ((row["dataset"], "yes" if row["published"] else "no",
                  minute(row["enabled_ms"]), row["enabled_by"] or "-", row["url"])
                 for row in rows))


@opendata_app.command("enable")
def opendata_enable(
    territory: _Territory, dataset: _Dataset,
    by: Annotated[str | None, typer.Option(help="Who (default: your login name).")] = None,
) -> None:
    """Publish a dataset of the territory."""
    changed = datasets.enable(hub_engine(), _territory(territory), dataset, by=by or _login())
    typer.echo(f"{dataset} of {territory}: "
               f"{'published' if changed else 'already published'}")


@opendata_app.command("disable")
def opendata_disable(territory: _Territory, dataset: _Dataset) -> None:
    """Stop publishing a dataset of the territory."""
    changed = datasets.disable(hub_engine(), _territory(territory), dataset)
    typer.echo(f"{dataset} of {territory}: {'unpublished' if changed else 'not published'}")


_Opt = typer.Option


@place_app.command("set")
def place_set(
    territory: _Territory,
    gateway: Annotated[str, typer.Argument(metavar="GATEWAY", help="Its gateway.")],
    device: Annotated[str, typer.Argument(metavar="DEVICE", help="A car park, a sensor.")],
    name: Annotated[str | None, _Opt(help="Public name.")] = None,
    lon: Annotated[float | None, _Opt(help="Longitude, decimal degrees (WGS 84).")] = None,
    lat: Annotated[float | None, _Opt(help="Latitude, decimal degrees (WGS 84).")] = None,
    address: Annotated[str | None, _Opt(help="Street address, postcode, town.")] = None,
    url: Annotated[str | None, _Opt(help="A web page about the place.")] = None,
    national_id: Annotated[str | None, _Opt(help="Car park id, INSEE-P-nnn.")] = None,
    insee: Annotated[str | None, _Opt(help="INSEE code of the town.")] = None,
    users: Annotated[str | None, _Opt(help="Who may park: tous or abonnés.")] = None,
    free: Annotated[bool | None, _Opt("--free/--paying", help="Free for everyone?")] = None,
    max_height: Annotated[str | None, _Opt(help="Max height in cm, or N/A.")] = None,
    siret: Annotated[str | None, _Opt(help="SIRET of the car park's operator.")] = None,
    disabled_spaces: Annotated[int | None, _Opt(help="Places for disabled drivers.")] = None,
    ev_spaces: Annotated[int | None, _Opt(help="Places with EV charging.")] = None,
    structure: Annotated[str | None, _Opt(help="enclos_en_surface or ouvrage.")] = None,
    info: Annotated[str | None, _Opt(help="A note for drivers.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set public details of a device; options left out keep their value."""
    given: dict[str, Any] = {
        key: value for key, value in (
            ("name", name), ("longitude", lon), ("latitude", lat), ("address", address),
            ("url", url), ("national_id", national_id), ("insee", insee), ("users", users),
            ("free", free), ("max_height", max_height), ("siret", siret),
            ("disabled_spaces", disabled_spaces), ("ev_spaces", ev_spaces),
            ("structure", structure), ("info", info)) if value is not None}
    place = set_place(hub_engine(), _territory(territory), gateway, device,
                      parse_update(given))
    if as_json:
        print_json(place)
        return
    typer.echo(f"{gateway}/{device}: " + ", ".join(
        f"{key}={value}" for key, value in place.items() if key not in ("gateway", "device")))


@place_app.command("list")
def place_list(territory: _Territory, as_json: JsonFlag = False) -> None:
    """Car parks: their national id, location, and what keeps them out of the national file."""
    tid = _territory(territory)
    with reading(hub_engine()) as conn:
        rows = car_park_rows(conn, tid)
    if as_json:
        print_json(rows)
        return
    print_table(("gateway", "car park", "national id", "places", "missing"),
                ((row["gateway"], row["car_park"], row["place"].get("national_id") or "-",
                  "-" if row["capacity"] is None else str(row["capacity"]),
                  ", ".join(row["missing"]) or "none: published")
                 for row in rows))
