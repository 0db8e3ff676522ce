"""``sync-server db maintain`` and ``sync-server retention``: a year of data at the hub."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from sync_server import admin
from sync_server.cli_output import JsonFlag, minute, print_json, print_table
from sync_server.cli_support import hub_engine
from sync_server.db.engine import reading
from sync_server.errors import BadRequest
from sync_server.maintenance import maintain
from sync_server.retention import retention_list, set_retention
from sync_server.rollups import DEFAULT_CHUNK

__all__ = ["db_maintain", "retention_app"]

retention_app = typer.Typer(help="How long each territory's readings are kept.",
                            no_args_is_help=True)


def db_maintain(
    chunk: Annotated[int, typer.Option(
        min=1, help="Seqs of a stream rolled up per transaction.")] = DEFAULT_CHUNK,
    as_json: JsonFlag = False,
) -> None:
    """Create next months' partitions, roll readings up, drop expired months (run it often)."""
    report = maintain(hub_engine(), chunk=chunk)
    if as_json:
        print_json(asdict(report))
        return
    rolled = report.rollups
    typer.echo(f"rollups: {rolled.seqs} seqs of {rolled.streams} streams"
               f" ({rolled.late_ranges} late runs)")
    if not report.partitioned:
        typer.echo("readings are not partitioned (SQLite): no month is dropped")
        return
    typer.echo(f"partitions created: {', '.join(report.created) or 'none'}")
    for dropped in report.dropped:
        typer.echo(f"dropped {dropped['partition']} (readings of "
                   f"{', '.join(dropped['territories'])})")
    for held in report.held:
        typer.echo(f"kept {held['partition']} for the next pass: {held['reason']}")


@retention_app.command("set")
def retention_set(
    territory: Annotated[str, typer.Argument(help="Territory name.")],
    days: Annotated[int | None, typer.Option(help="Keep raw readings this many days at least.")]
    = None,
    forever: Annotated[bool, typer.Option("--forever", help="Keep them for ever.")] = False,
) -> None:
    """Set how long a territory's raw readings are kept (rollups are kept for ever)."""
    if (days is None) == (not forever):
        raise BadRequest("give --days N or --forever")
    engine = hub_engine()
    with engine.begin() as conn:
        set_retention(conn, admin.territory_id(conn, territory), days)
    kept = "for ever" if days is None else f"at least {days} days"
    typer.echo(f"{territory}: readings kept {kept}; months go once every territory with "
               "readings in them lets them go")


@retention_app.command("show")
def retention_show(as_json: JsonFlag = False) -> None:
    """Every territory's retention."""
    with reading(hub_engine()) as conn:
        rows = retention_list(conn)
    if as_json:
        print_json(rows)
        return
    print_table(["territory", "kept", "set"],
                [(row["territory"], "for ever" if row["keep_days"] is None
                  else f"{row['keep_days']} days", minute(row["updated_ms"])) for row in rows])
