"""``sync-server``: the hub's command line, for operators and for starting the service.

Every command reads the same settings (flags or ``PONTON_HUB_*`` variables; the store's
before or after the subcommand) and prints one ``error:`` line with exit status 2 for
anything it refuses, never a traceback (sync_server/cli_errors.py). Help is plain text:
it must read on a Pi's 80-column console and through a pipe.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from edge_agent.codecs.log_lines import LogFormat
from sync_server import admin
from sync_server.bundles import publish_bundle
from sync_server.cli_access import badge_app, policy_app, report_app
from sync_server.cli_errors import run_cli
from sync_server.cli_field import alarm_app, carpark_app
from sync_server.cli_opendata import opendata_app
from sync_server.cli_output import JsonFlag, minute, print_json, print_table, when
from sync_server.cli_store import accept_store_options
from sync_server.cli_support import (
    SETTINGS,
    badge_seal,
    hub_engine,
    hub_settings,
    parse_duration,
    signing_key,
)
from sync_server.cli_users import user_app
from sync_server.cli_years import db_maintain, retention_app
from sync_server.db.engine import create_hub_engine, reading
from sync_server.db.migrate import current_revision, upgrade
from sync_server.errors import BadRequest, SettingsError
from sync_server.keys import (
    create_badge_seal,
    create_signing_key,
    load_signing_key,
    with_badge_seal,
)
from sync_server.queries import gateway_health
from sync_server.settings import DEFAULT_DATA_DIR

__all__ = ["app", "main"]

app = typer.Typer(name="sync-server", help="Ponton sync hub: serve gateways and operators.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  rich_markup_mode=None)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="The bundle-signing key gateways pin.", no_args_is_help=True)
territory_app = typer.Typer(help="Territories.", no_args_is_help=True)
site_app = typer.Typer(help="Sites of a territory.", no_args_is_help=True)
gateway_app = typer.Typer(help="Gateways and their enrollment codes.", no_args_is_help=True)
token_app = typer.Typer(help="Operator tokens.", no_args_is_help=True)
bundle_app = typer.Typer(help="Signed configuration and policy bundles.",
                         no_args_is_help=True)
for sub, name in ((db_app, "db"), (keys_app, "keys"), (territory_app, "territory"),
                  (site_app, "site"), (gateway_app, "gateway"), (token_app, "token"),
                  (bundle_app, "bundle"), (badge_app, "badge"), (policy_app, "policy"),
                  (report_app, "report"), (alarm_app, "alarm"), (carpark_app, "carpark"),
                  (opendata_app, "opendata"), (user_app, "user"),
                  (retention_app, "retention")):
    app.add_typer(sub, name=name)
db_app.command("maintain")(db_maintain)

_Rows = list[dict[str, Any]]
_OnlyTerritory = Annotated[str | None, typer.Option(help="Only this territory.")]


def _listed(territory: str | None, query: Callable[[Connection, int | None], _Rows]) -> _Rows:
    """``query``'s rows for one territory by name (refused if unknown), or for every one."""
    with reading(hub_engine()) as conn:
        return query(conn, None if territory is None else admin.territory_id(conn, territory))


@app.callback()
def configure(
    data_dir: Annotated[Path, typer.Option(envvar="PONTON_HUB_DATA_DIR",
                                           help="Where the SQLite store and the key live.")]
    = DEFAULT_DATA_DIR,
    database_url: Annotated[str | None, typer.Option(
        envvar="PONTON_HUB_DATABASE_URL",
        help="postgresql://USER@HOST/DB; default: SQLite in the data directory.")] = None,
    signing_key: Annotated[Path | None, typer.Option(
        envvar="PONTON_HUB_SIGNING_KEY", help="Default: DATA_DIR/signing-key.pem.")] = None,
    demo: Annotated[bool, typer.Option(
        envvar="PONTON_HUB_DEMO", help="Create a missing signing key (never in production).")]
    = False,
    max_request_mb: Annotated[float, typer.Option(
        envvar="PONTON_HUB_MAX_REQUEST_MB", help="Largest request body.")] = 8,
    max_decoded_mb: Annotated[float, typer.Option(
        envvar="PONTON_HUB_MAX_DECODED_MB", help="Largest batch once decompressed.")] = 64,
    clock_tolerance_s: Annotated[float, typer.Option(
        envvar="PONTON_HUB_CLOCK_TOLERANCE_S",
        help="Gateway clock skew beyond which pre-2020 timestamps are corrected.")] = 120,
    enroll_max_failures: Annotated[int, typer.Option(
        envvar="PONTON_HUB_ENROLL_MAX_FAILURES",
        help="Failed enrollments from one address before it must wait.")] = 10,
    enroll_window_s: Annotated[int, typer.Option(
        envvar="PONTON_HUB_ENROLL_WINDOW_S", help="How long failures count.")] = 900,
    policy_lifetime_s: Annotated[int, typer.Option(
        envvar="PONTON_HUB_POLICY_LIFETIME_S",
        help="How long a signed access policy stays valid (renewed past half of it).")]
    = 7 * 86_400,
    report_min_badges: Annotated[int, typer.Option(
        envvar="PONTON_HUB_REPORT_MIN_BADGES",
        help="k: a published statistics cell needs at least k distinct badges.")] = 5,
    ui_idle_timeout_s: Annotated[int, typer.Option(
        envvar="PONTON_HUB_UI_IDLE_TIMEOUT_S",
        help="A dashboard session ends after this many idle seconds.")] = 1800,
) -> None:
    """Settings shared by every command."""
    SETTINGS.update(data_dir=data_dir, database_url=database_url,
                     signing_key_file=signing_key, demo=demo,
                     max_request_bytes=int(max_request_mb * 2**20),
                     max_decoded_bytes=int(max_decoded_mb * 2**20),
                     clock_tolerance_ms=int(clock_tolerance_s * 1000),
                     enroll_max_failures=enroll_max_failures, enroll_window_s=enroll_window_s,
                     policy_lifetime_s=policy_lifetime_s, report_min_badges=report_min_badges,
                     ui_idle_timeout_s=ui_idle_timeout_s)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8600,
    upgrade_db: Annotated[bool, typer.Option(
        "--upgrade-db", envvar="PONTON_HUB_UPGRADE_DB",
        help="Create or upgrade the schema before serving, as `db upgrade` does.")] = False,
    workers: Annotated[int, typer.Option(
        min=1, envvar="PONTON_HUB_WORKERS",
        help="Worker processes sharing the port (one database behind them all).")] = 1,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        envvar="PONTON_HUB_FORWARDED_ALLOW_IPS",
        help="Reverse proxies whose X-Forwarded-For and -Proto are trusted "
             "(comma-separated addresses or networks, * for any); by default none, so no "
             "client can choose the address rate limits see.")] = None,
    log_format: Annotated[LogFormat, typer.Option(
        envvar="PONTON_HUB_LOG_FORMAT",
        help="plain lines, or one JSON object per line for a log shipper.")] = "plain",
    tls_cert: Annotated[Path | None, typer.Option(
        envvar="PONTON_HUB_TLS_CERT", help="Serve HTTPS with this certificate chain (PEM); "
        "needs --tls-key.")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        envvar="PONTON_HUB_TLS_KEY", help="The key of --tls-cert (PEM).")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(
        envvar="PONTON_HUB_TLS_CLIENT_CA", help="Require client certificates signed by this "
        "CA (mutual TLS); needs --tls-cert.")] = None,
    push_threads: Annotated[int, typer.Option(
        envvar="PONTON_HUB_PUSH_THREADS",
        help="Pushes decoded and stored at once, per worker process.")] = 4,
    push_queue: Annotated[int, typer.Option(
        envvar="PONTON_HUB_PUSH_QUEUE",
        help="Pushes waiting for those threads; beyond them a push gets 503 and "
             "Retry-After.")] = 12,
    body_timeout: Annotated[float, typer.Option(
        envvar="PONTON_HUB_BODY_TIMEOUT", min=0.1, max=3600,
        help="Seconds a request's body may take to arrive; beyond, 408 and its push slot "
             "is freed. Keep it above the gateways' [sync] timeout_s.")] = 60.0,
) -> None:
    """Serve the HTTP API.

    Prints READY http://HOST:PORT (https with --tls-cert) once listening.
    """
    # FastAPI and uvicorn take half a second to import: only the server pays for them.
    from sync_server.serving import HubTls, log_to_stderr, serve  # noqa: PLC0415

    if (tls_cert is None) != (tls_key is None) or (tls_client_ca and tls_cert is None):
        raise SettingsError("--tls-cert and --tls-key go together, and --tls-client-ca needs "
                            "them")
    tls = HubTls(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    SETTINGS.update(push_threads=push_threads, push_queue=push_queue,
                    body_timeout_s=body_timeout)
    settings = hub_settings()
    os.environ["PONTON_HUB_LOG_FORMAT"] = log_format  # read by every worker too
    log_to_stderr()
    if upgrade_db:
        upgrade(with_badge_seal(create_hub_engine(settings.resolved_database_url), badge_seal()))
    serve(settings, host, port, workers=workers, forwarded_allow_ips=forwarded_allow_ips,
          tls=tls)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to this version's."""
    engine = with_badge_seal(create_hub_engine(hub_settings().resolved_database_url),
                             badge_seal())
    upgrade(engine)
    typer.echo(f"database at revision {current_revision(engine)}")


@keys_app.command("init")
def keys_init() -> None:
    """Create the signing key and the badge seal (once: keep them with the database)."""
    settings = hub_settings()
    made = []
    if not settings.resolved_signing_key_file.exists():
        key = create_signing_key(settings.resolved_signing_key_file)
        made.append(f"signing key {key.key_id} written to {settings.resolved_signing_key_file}")
    if not settings.badge_seal_file.exists():
        create_badge_seal(settings.badge_seal_file)
        made.append(f"badge seal written to {settings.badge_seal_file}")
    if not made:
        create_signing_key(settings.resolved_signing_key_file)  # refused: says why
    typer.echo("\n".join(made))


@keys_app.command("show")
def keys_show() -> None:
    """Print the signing key's id and public key (base64, as enrollment gives it)."""
    settings = hub_settings()
    key = load_signing_key(settings.resolved_signing_key_file, demo=False)
    public = base64.b64encode(key.public_bytes).decode("ascii")
    typer.echo(f"key id {key.key_id}\npublic key {public}")


@territory_app.command("add")
def territory_add(name: str) -> None:
    """Create a territory (with its badge pseudonymisation key)."""
    admin.add_territory(hub_engine(), name)
    typer.echo(f"territory {name} created")


@territory_app.command("list")
def territory_list(as_json: JsonFlag = False) -> None:
    """Territories with their number of sites and gateways."""
    with reading(hub_engine()) as conn:
        rows = admin.territory_list(conn)
    if as_json:
        print_json(rows)
        return
    print_table(("territory", "sites", "gateways", "created"),
                ((row["territory"], str(row["sites"]), str(row["gateways"]),
                  minute(row["created_ms"])) for row in rows))


@site_app.command("add")
def site_add(territory: Annotated[str, typer.Option(help="Territory name.")], name: str) -> None:
    """Create a site in a territory."""
    admin.add_site(hub_engine(), territory, name)
    typer.echo(f"site {name} created in {territory}")


@site_app.command("list")
def site_list(territory: _OnlyTerritory = None, as_json: JsonFlag = False) -> None:
    """Sites with their territory and number of gateways."""
    rows = _listed(territory, admin.site_list)
    if as_json:
        print_json(rows)
        return
    print_table(("territory", "site", "gateways", "created"),
                ((row["territory"], row["site"], str(row["gateways"]), minute(row["created_ms"]))
                 for row in rows))


@gateway_app.command("add")
def gateway_add(
    territory: Annotated[str, typer.Option(help="Territory name.")],
    site: Annotated[str, typer.Option(help="Site name.")],
    name: Annotated[str | None, typer.Option(help="Default: SITE-gwN.")] = None,
    expires_in: Annotated[str, typer.Option(help="Code lifetime: 30m, 24h, 7d.")] = "24h",
    reissue: Annotated[bool, typer.Option(
        help="For an existing gateway: revoke its token and print a new code.")] = False,
) -> None:
    """Register a gateway and print its one-time enrollment code."""
    enrollment = admin.add_gateway(hub_engine(), territory, site, name,
                                   expires_in_s=parse_duration(expires_in), reissue=reissue)
    typer.echo(f"gateway {enrollment.gateway} ({territory}/{site})\n"
               f"enrollment code {enrollment.code} (single use, expires "
               f"{when(enrollment.expires_ms)})\n"
               "on the gateway: edge-agent provision --config gateway.toml --hub URL "
               f"--code {enrollment.code}")


@gateway_app.command("list")
def gateway_list(territory: _OnlyTerritory = None, as_json: JsonFlag = False) -> None:
    """Gateways with last seen, the backlog they reported and their clock skew."""
    rows = _listed(territory, gateway_health)
    if as_json:
        print_json(rows)
        return
    print_table(("territory", "site", "gateway", "enrolled", "last seen", "backlog", "clock skew",
                 "acked"), (_health(row) for row in rows))


def _health(row: dict[str, Any]) -> tuple[str, ...]:
    skew = row["clock_skew_ms"]
    return (row["territory"], row["site"], row["gateway"], "yes" if row["enrolled_ms"] else "no",
            minute(row["last_seen_ms"]) if row["last_seen_ms"] else "never",
            "-" if row["backlog"] is None else f"{row['backlog']:,}",
            "-" if skew is None else f"{skew / 1000:+.1f} s",
            ", ".join(f"{k} {v}" for k, v in sorted(row["acked"].items())))


@token_app.command("add")
def token_add(
    territory: Annotated[str | None, typer.Option(help="The territory it reads.")] = None,
    admin_token: Annotated[bool, typer.Option("--admin", help="Reads every territory.")]
    = False,
    name: Annotated[str, typer.Option(help="Who or what holds it.")] = "operator",
) -> None:
    """Create an operator token (printed once; the hub keeps only its hash)."""
    if (territory is None) == (not admin_token):
        raise BadRequest("give exactly one of --territory T or --admin")
    typer.echo(admin.add_operator_token(hub_engine(), territory, name))


@token_app.command("list")
def token_list(as_json: JsonFlag = False) -> None:
    """Operator tokens: id, name, territory, created, revoked (never the secret)."""
    rows = admin.operator_token_list(hub_engine())
    if as_json:
        print_json(rows)
        return
    print_table(("id", "name", "territory", "created", "revoked"),
                ((str(row["id"]), row["name"], row["territory"] or "(admin: all)",
                  minute(row["created_ms"]), minute(row["revoked_ms"])) for row in rows))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="Id from `token list`.")]) -> None:
    """Revoke an operator token at once."""
    admin.revoke_operator_token(hub_engine(), token_id)
    typer.echo(f"token {token_id} revoked")


@bundle_app.command("publish")
def bundle_publish(
    territory: Annotated[str, typer.Option(help="Territory name.")],
    kind: Annotated[str, typer.Option(help="config or policy.")],
    file: Annotated[Path, typer.Argument(help="JSON object to sign and publish.")],
    expires_in: Annotated[str, typer.Option(help="Lifetime: 12h, 7d.")] = "7d",
) -> None:
    """Sign a JSON payload as the next version of a territory's bundle."""
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read {file}: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest(f"{file} must hold a JSON object")
    version = publish_bundle(hub_engine(), signing_key(), territory, kind, payload,
                             expires_in_s=parse_duration(expires_in))
    typer.echo(f"{kind} bundle version {version} published for {territory}")


accept_store_options(app)


def main() -> None:
    """Run the CLI; refusals and usage errors become one ``error:`` line and exit status 2."""
    run_cli(app)
