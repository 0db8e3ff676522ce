"""``sync-server badge | policy | report``: access control from the operator's terminal.

Badges go in by their printed number and come out by pseudonym only: the hub keeps no
number. Each command that changes badges or rules publishes the policy once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sync_server.access.badge_input import BadgeText
from sync_server.access.policy import (
    PolicySigner,
    parse_rules_file,
    publish_policy,
    rules_summary,
    set_rules,
)
from sync_server.access.registry import (
    BadgeChange,
    BadgeRef,
    add_badge,
    badge_rows,
    import_badges,
    revoke_badge,
)
from sync_server.access.reports import consumption, grouping, service_statistics
from sync_server.admin import territory_id
from sync_server.cli_output import JsonFlag, minute, print_json, print_table, when
from sync_server.cli_support import hub_engine, hub_settings, signing_key
from sync_server.db.engine import reading
from sync_server.errors import BadRequest, InvalidRows

__all__ = ["badge_app", "policy_app", "report_app"]

badge_app = typer.Typer(help="Badges of a territory (kept by pseudonym only).",
                        no_args_is_help=True)
policy_app = typer.Typer(help="Access policy rules and the signed policy.", no_args_is_help=True)
report_app = typer.Typer(help="Consumption and service use from the gateways' events.",
                         no_args_is_help=True)

_Territory = Annotated[str, typer.Option(help="Territory name.")]
_Month = Annotated[str | None, typer.Option(help="One month, YYYY-MM (default: all).")]


def _signer() -> PolicySigner:
    return PolicySigner(signing_key(), hub_settings().policy_lifetime_s)


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read {file}: {exc}") from None


def _published(change: BadgeChange) -> str:
    if change.policy_version is None:
        return "nothing changed, no policy published"
    return f"policy version {change.policy_version} published"


def _length(length: int | None) -> str:
    return "" if length is None else str(length)


def _seconds(value: int | None) -> str:
    return minute(None if value is None else value * 1000)


def _amounts(row: dict[str, Any]) -> list[str]:
    return [str(row["sessions"]), f"{row['kwh']:.3f}", f"{row['m3']:.3f}"]


@badge_app.command("add")
def badge_add(
    territory: _Territory,
    number: Annotated[str, typer.Option(help="The card's number, as printed in FORM.")],
    category: Annotated[str, typer.Option(help="A category of the policy rules.")],
    form: Annotated[str, typer.Option(
        help="How NUMBER is written: hex (the card's bytes), 8H10D, 6H8D, 3+5 or dec.")]
    = "hex",
    length: Annotated[int | None, typer.Option(help="The card's bytes (dec numbers only).")]
    = None,
    valid_from: Annotated[str, typer.Option(help="ISO 8601 date or date-time.")] = "",
    valid_until: Annotated[str, typer.Option(help="ISO 8601; a date means to its end.")] = "",
    master: Annotated[bool, typer.Option(
        help="Staff master badge: any gate in normal mode, and fail-secure gates once the "
        "policy has expired (locked gates stay shut).")] = False,
    label: Annotated[str, typer.Option(help="Your reference (berth, contract); stays here.")]
    = "",
) -> None:
    """Register a badge (or update it) and publish the policy."""
    text = BadgeText(number, category, form, valid_from, valid_until, str(master), label,
                     _length(length))
    change = add_badge(hub_engine(), _signer(), territory, text)
    what = "added" if change.added else "updated" if change.updated else "unchanged"
    typer.echo(f"badge {change.pseudonyms[0]} {what}; {_published(change)}")


@badge_app.command("import")
def badge_import(
    territory: _Territory,
    file: Annotated[Path, typer.Argument(help="CSV: number, form, category, valid_from, "
                                              "valid_until, master, label.")],
    partial: Annotated[bool, typer.Option(
        help="Store the good lines even if others are wrong.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Register every badge of a CSV file; any wrong line and nothing is stored."""
    try:
        change = import_badges(hub_engine(), _signer(), territory, _read(file),
                               partial=partial)
    except InvalidRows as exc:
        if as_json:
            print_json({"error": exc.code, "detail": exc.detail, "problems": exc.problems})
        else:
            _problems(exc.problems)
        raise
    if as_json:
        print_json(change.as_dict())
        return
    _problems([problem.as_dict() for problem in change.problems])
    typer.echo(f"{change.added} added, {change.updated} updated, {change.unchanged} unchanged"
               f"{f', {len(change.problems)} lines left out' if change.problems else ''}; "
               f"{_published(change)}")


def _problems(problems: list[dict[str, Any]]) -> None:
    if not problems:
        return
    print_table(("line", "field", "reason"),
                ((str(p["line"]), str(p["field"]), str(p["reason"])) for p in problems))


@badge_app.command("revoke")
def badge_revoke(
    territory: _Territory,
    number: Annotated[str | None, typer.Option(help="The card's number, as printed.")]
    = None,
    form: Annotated[str, typer.Option(help="How NUMBER is written.")] = "hex",
    length: Annotated[int | None, typer.Option(help="The card's bytes (dec numbers only).")]
    = None,
    pseudonym: Annotated[str | None, typer.Option(help="Or its pseudonym (from `list`).")]
    = None,
) -> None:
    """Revoke a badge at once and publish the policy (gates then answer "revoked")."""
    ref = BadgeRef(number, form, pseudonym, _length(length))
    change = revoke_badge(hub_engine(), _signer(), territory, ref)
    what = "revoked" if change.revoked else "was already revoked"
    typer.echo(f"badge {change.pseudonyms[0]} {what}; {_published(change)}")


@badge_app.command("list")
def badge_list(
    territory: _Territory,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    revoked: Annotated[bool | None, typer.Option(
        "--revoked/--active", help="Only revoked, or only active badges.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Badges by pseudonym, with category, validity, revocation and label."""
    with reading(hub_engine()) as conn:
        rows = badge_rows(conn, territory_id(conn, territory), category=category,
                          revoked=revoked)
    if as_json:
        print_json(rows)
        return
    print_table(("pseudonym", "category", "valid from", "valid until", "revoked", "master",
                 "label"),
                ((row["pseudonym"], row["category"], _seconds(row["valid_from_s"]),
                  _seconds(row["valid_until_s"]), minute(row["revoked_ms"]),
                  "yes" if row["master"] else "-", row["label"] or "") for row in rows))


@policy_app.command("set")
def policy_set(
    territory: _Territory,
    file: Annotated[Path, typer.Argument(help="Rules as JSON, or TOML (*.toml).")],
) -> None:
    """Check and store the territory's rules, and publish the policy."""
    rules = parse_rules_file(_read(file), file.name)
    version = set_rules(hub_engine(), _signer(), territory, rules)
    typer.echo(f"rules of {territory} set; policy version {version} published")


@policy_app.command("show")
def policy_show(territory: _Territory, as_json: JsonFlag = False) -> None:
    """The rules, their digest, the newest policy and the badge counts."""
    with reading(hub_engine()) as conn:
        summary = rules_summary(conn, territory_id(conn, territory))
    if as_json or summary["rules"] is None:
        print_json(summary)
        return
    policy = summary["policy"]
    print_json(summary["rules"])
    typer.echo(f"rules sha256 {summary['digest']}, set {when(summary['updated_ms'])}\n"
               f"policy version {policy['version']}, signed {when(policy['issued_ms'])}, "
               f"expires {when(policy['expires_ms'])}\n"
               f"{summary['badges']} badges, {summary['revoked']} revoked")


@policy_app.command("publish")
def policy_publish(territory: _Territory) -> None:
    """Sign the current rules and badges as a new policy version now."""
    version = publish_policy(hub_engine(), _signer(), territory)
    typer.echo(f"policy version {version} published for {territory}")


@report_app.command("consumption")
def report_consumption(
    territory: _Territory,
    by: Annotated[str, typer.Option(help="badge, pedestal or month.")] = "badge",
    month: _Month = None,
    as_json: JsonFlag = False,
) -> None:
    """kWh, m³ and sessions of pedestal sessions, per badge, pedestal or month."""
    with reading(hub_engine()) as conn:
        report = consumption(conn, territory_id(conn, territory), by=grouping(by), month=month)
    if as_json:
        print_json(report)
        return
    keys = {"badge": ("badge", "category", "label"), "pedestal": ("gateway", "pedestal"),
            "month": ("month",)}[report["by"]]
    totals = report["totals"]
    rows = [*([str(row[key] or "-") for key in keys] + _amounts(row) for row in report["rows"]),
            ["total", *("" for _ in keys[1:]), *_amounts(totals)]]
    print_table((*keys, "sessions", "kWh", "m³"), rows)


@report_app.command("services")
def report_services(territory: _Territory, month: _Month = None, as_json: JsonFlag = False) -> None:
    """Uses per service, holder category and hour; cells under k badges are not shown."""
    k = hub_settings().report_min_badges
    with reading(hub_engine()) as conn:
        report = service_statistics(conn, territory_id(conn, territory), k=k, month=month)
    if as_json:
        print_json(report)
        return
    print_table(("service", "category", "hour", "uses", "badges"),
                ((cell["service"], cell["category"], f"{cell['hour']:02d}h", str(cell["uses"]),
                  str(cell["badges"])) for cell in report["cells"]))
    typer.echo(f"{report['suppressed_cells']} cells under {k} badges not shown")
