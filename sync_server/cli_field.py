"""``sync-server alarm | carpark``: a territory's field state from the operator's terminal.

Tables are cut to fit 80 columns (times to the minute, UTC); ``--json`` gives every field.
Acknowledging from here names its author with ``--by`` (default: the login name), since
no token speaks for the terminal.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from sync_server.admin import territory_id
from sync_server.alarms import Acknowledgement, AlarmFilter, acknowledge, alarms_page
from sync_server.car_parks import car_parks
from sync_server.cli_support import hub_engine, print_table, when
from sync_server.db.engine import reading
from sync_server.queries import MAX_EVENTS, Scope

__all__ = ["alarm_app", "carpark_app"]

alarm_app = typer.Typer(help="Alarms the gateways raised, and their acknowledgements.",
                        no_args_is_help=True)
carpark_app = typer.Typer(help="Car-park occupancy as the gateways count it.",
                          no_args_is_help=True)

_Territory = Annotated[str, typer.Option(help="Territory name.")]
_Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _scope(territory: str) -> Scope:
    with reading(hub_engine()) as conn:
        return Scope(territory_id(conn, territory))


def _minute(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def _table(*columns: str) -> Table:
    """A borderless table: seven columns of alarms still fit an 80-column terminal."""
    return Table(*columns, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                 collapse_padding=True)


def _add_row(table: Table, *cells: str) -> None:
    """Cells as plain text: names come from gateways, and rich would read ``[x]`` as markup."""
    table.add_row(*(Text(cell) for cell in cells))


def _json(rows: Any) -> None:
    typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))


@alarm_app.command("list")
def alarm_list(
    territory: _Territory,
    state: Annotated[str, typer.Option(help="open, cleared or all.")] = "all",
    limit: Annotated[int, typer.Option(help=f"At most this many (≤ {MAX_EVENTS}).")] = 100,
    before: Annotated[str | None, typer.Option(
        help="Only alarms listed after this one (the last id of the previous page).")] = None,
    as_json: _Json = False,
) -> None:
    """Alarms, newest first: id, where, rule, severity, raised and cleared (UTC), ack."""
    scope = _scope(territory)
    with reading(hub_engine()) as conn:
        rows = alarms_page(conn, scope, AlarmFilter(state=state, limit=limit, before=before))
    if as_json:
        _json(rows)
        return
    table = _table("id", "gateway/device", "rule", "severity", "raised", "cleared", "ack by")
    for row in rows:
        _add_row(table, row["id"], f"{row['gateway']}/{row['device']}", str(row["rule"] or "-"),
                      str(row["severity"] or "-"), _minute(row["raised_ms"]),
                      _minute(row["cleared_ms"]) if row["cleared_ms"] is not None else "open",
                      row["ack"]["by"] if row["ack"] else "-")
    print_table(table)


@alarm_app.command("ack")
def alarm_ack(
    territory: _Territory,
    alarm_id: Annotated[str, typer.Argument(metavar="ID", help="From `alarm list`.")],
    comment: Annotated[str, typer.Option(help="What was seen or done.")] = "",
    by: Annotated[str | None, typer.Option(help="Who (default: your login name).")] = None,
) -> None:
    """Acknowledge an alarm once, with who and a comment."""
    engine = hub_engine()
    with reading(engine) as conn:
        tid = territory_id(conn, territory)
    done = acknowledge(engine, tid, alarm_id, Acknowledgement(by or _login(), comment))
    typer.echo(f"alarm {done['id']} ({done['gateway']}/{done['device']}, {done['rule']}) "
               f"acknowledged by {done['ack']['by']} at {when(done['ack']['acked_ms'])}")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "sync-server"


@carpark_app.command("list")
def carpark_list(territory: _Territory, as_json: _Json = False) -> None:
    """Each car park's latest occupancy, capacity, free spaces and full flag."""
    scope = _scope(territory)
    with reading(hub_engine()) as conn:
        rows = car_parks(conn, scope)
    if as_json:
        _json(rows)
        return
    table = _table("gateway", "car park", "vehicles", "spaces", "free", "full", "counted")
    for row in rows:
        full = {None: "-", True: "FULL", False: "no"}[row["full"]]
        _add_row(table, row["gateway"], row["car_park"], _number(row["occupancy"]),
                      _number(row["capacity"]), _number(row["free"]), full,
                      _minute(row["occupancy_ms"]))
    print_table(table)


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
