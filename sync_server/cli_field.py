"""``sync-server alarm | carpark``: a territory's field state from the operator's terminal.

Tables fit 80 columns (times to the minute, UTC); ``--json`` gives every field.
Acknowledging from here names its author with ``--by`` (default: the login name), since
no token speaks for the terminal.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from sync_server.admin import territory_id
from sync_server.alarms import Acknowledgement, AlarmFilter, acknowledge, alarms_page
from sync_server.car_parks import car_parks
from sync_server.cli_output import JsonFlag, minute, print_json, print_table, when
from sync_server.cli_support import hub_engine
from sync_server.db.engine import reading
from sync_server.queries import MAX_EVENTS, Scope

__all__ = ["alarm_app", "carpark_app"]

alarm_app = typer.Typer(help="Alarms the gateways raised, and their acknowledgements.",
                        no_args_is_help=True)
carpark_app = typer.Typer(help="Car-park occupancy as the gateways count it.",
                          no_args_is_help=True)

_Territory = Annotated[str, typer.Option(help="Territory name.")]


def _scope(territory: str) -> Scope:
    with reading(hub_engine()) as conn:
        return Scope(territory_id(conn, territory))


@alarm_app.command("list")
def alarm_list(
    territory: _Territory,
    state: Annotated[str, typer.Option(help="open, cleared or all.")] = "all",
    limit: Annotated[int, typer.Option(help=f"At most this many (≤ {MAX_EVENTS}).")] = 100,
    before: Annotated[str | None, typer.Option(
        help="Only alarms listed after this one (the last id of the previous page).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Alarms, newest first: id, where, rule, severity, raised and cleared (UTC), ack."""
    scope = _scope(territory)
    with reading(hub_engine()) as conn:
        rows = alarms_page(conn, scope, AlarmFilter(state=state, limit=limit, before=before))
    if as_json:
        print_json(rows)
        return
    print_table(("id", "gateway/device", "rule", "severity", "raised", "cleared", "ack by"),
                ((row["id"], f"{row['gateway']}/{row['device']}", str(row["rule"] or "-"),
                  str(row["severity"] or "-"), minute(row["raised_ms"], year=False),
                  "open" if row["cleared_ms"] is None else minute(row["cleared_ms"], year=False),
                  row["ack"]["by"] if row["ack"] else "-") for row in rows))


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
def carpark_list(territory: _Territory, as_json: JsonFlag = False) -> None:
    """Each car park's latest occupancy, capacity, free spaces and full flag."""
    scope = _scope(territory)
    with reading(hub_engine()) as conn:
        rows = car_parks(conn, scope)
    if as_json:
        print_json(rows)
        return
    full = {None: "-", True: "FULL", False: "no"}
    print_table(("gateway", "car park", "vehicles", "spaces", "free", "full", "counted"),
                ((row["gateway"], row["car_park"], _number(row["occupancy"]),
                  _number(row["capacity"]), _number(row["free"]), full[row["full"]],
                  minute(row["occupancy_ms"], year=False)) for row in rows))


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
