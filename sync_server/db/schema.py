"""The hub's tables, as SQLAlchemy Core: one schema for SQLite and PostgreSQL.

Every table that holds a territory's data carries ``territory_id`` (or reaches it through a
gateway), so every query can be scoped by the caller's territory and PostgreSQL can later
distribute by it (Citus). Records are keyed by ``(stream_id, seq)``: a stream belongs to
one gateway, so that key is the protocol's ``(gateway, stream, seq)`` and the unique
constraint that makes a replay harmless. Readings stay lean (no text per row): device and
quantity live once in ``series``. Badges are kept by pseudonym only: the raw card number never
reaches a table.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "alarm_acks",
    "badges",
    "bundles",
    "clock_corrections",
    "devices",
    "enroll_failures",
    "enrollment_codes",
    "events",
    "gateways",
    "metadata",
    "open_data_places",
    "open_datasets",
    "operator_tokens",
    "policy_rules",
    "readings",
    "retention_periods",
    "rollup_marks",
    "rollup_pending",
    "rollups_daily",
    "rollups_hourly",
    "series",
    "sites",
    "streams",
    "territories",
    "ui_sessions",
    "ui_signin_failures",
    "ui_signin_links",
    "ui_users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_NAME = 64


def _territory_fk() -> Column[int]:
    return Column("territory_id", ForeignKey("territories.id"), nullable=False)


territories = Table(
    "territories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(_NAME), nullable=False, unique=True),
    #: HMAC key for badge pseudonyms, handed to the territory's gateways at enrollment;
    #: stored sealed (64 bytes: sync_server/keys.py), never in clear. Neither store enforces
    #: a BLOB's declared length.
    Column("badge_key", LargeBinary(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("name", String(_NAME), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("territory_id", "name"),
)

gateways = Table(
    "gateways",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("site_id", ForeignKey("sites.id"), nullable=False),
    Column("name", String(_NAME), nullable=False),
    #: SHA-256 of the gateway's token; NULL until it enrolls.
    Column("token_hash", String(64), unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("enrolled_ms", BigInteger),
    Column("last_seen_ms", BigInteger),
    Column("backlog", BigInteger),
    Column("clock_skew_ms", BigInteger),
    Column("implausible_ts_total", BigInteger, nullable=False, server_default="0"),
    #: What the gateway's latest push said of itself (sync_server/gateway_facts.py).
    Column("agent_version", String(64)),
    Column("sync_lag_ms", BigInteger),
    Column("held_policy_version", BigInteger),
    Column("held_config_version", BigInteger),
    #: Bumped by a reissue: a replacement box starts its streams from seq 1 again.
    Column("incarnation", Integer, nullable=False, server_default="1"),
    UniqueConstraint("territory_id", "name"),
)

enrollment_codes = Table(
    "enrollment_codes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
)

enroll_failures = Table(
    "enroll_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("client", String(_NAME), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "client", "at_ms"),
)

operator_tokens = Table(
    "operator_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    #: NULL for an admin token, which reads every territory.
    Column("territory_id", ForeignKey("territories.id")),
    Column("name", String(_NAME), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("profile", String(_NAME), nullable=False),
    #: JSON list of quantity names, as the gateway declared them.
    Column("quantities", Text, nullable=False),
    Column("declared_ms", BigInteger, nullable=False),
    UniqueConstraint("gateway_id", "name"),
)

streams = Table(
    "streams",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    #: The gateway's incarnation that wrote this stream; older ones are kept, read-only.
    Column("incarnation", Integer, nullable=False),
    Column("name", String(32), nullable=False),
    #: ``reading`` or ``event``, fixed by the stream's first batch.
    Column("record_type", String(8), nullable=False),
    #: The high-water mark: every seq up to it is stored (or was evicted at the gateway).
    Column("acked_seq", BigInteger, nullable=False),
    UniqueConstraint("gateway_id", "incarnation", "name"),
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    Column("device", String(128), nullable=False),
    Column("quantity", String(_NAME), nullable=False),
    UniqueConstraint("gateway_id", "device", "quantity"),
    Index(None, "territory_id", "device", "quantity"),
)

#: On PostgreSQL this table is partitioned by month of ``ts_ms`` (sync_server/db/partitions.py)
#: and keyed by a unique index on ``(stream_id, seq, ts_ms)``: a partitioned table's keys must
#: hold the partition key. The stream's row lock at ingest keeps ``(stream_id, seq)`` unique.
readings = Table(
    "readings",
    metadata,
    Column("stream_id", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("series_id", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    #: NULL stands for NaN or infinity (quality INVALID), which SQL cannot compare.
    Column("value", Double),
    Column("quality", SmallInteger, nullable=False),
    Index(None, "series_id", "ts_ms"),
)

events = Table(
    "events",
    metadata,
    Column("stream_id", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    _territory_fk(),
    Column("gateway_id", Integer, nullable=False),
    Column("kind", String(_NAME), nullable=False),
    Column("device", String(128), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("attrs", Text, nullable=False),
    Index(None, "territory_id", "ts_ms"),
    Index(None, "gateway_id", "kind", "ts_ms"),
    #: A territory's alarms (or car-park states) newest first, without reading its other events.
    Index(None, "kind", "territory_id", "ts_ms"),
    #: One device's events in time: the clear after a raise, a car park's latest state.
    Index(None, "gateway_id", "device", "ts_ms"),
)

clock_corrections = Table(
    "clock_corrections",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    Column("stream_id", ForeignKey("streams.id"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    #: Added to the gateway's timestamps: hub clock minus gateway clock at sending.
    Column("skew_ms", BigInteger, nullable=False),
    Column("implausible", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
)

bundles = Table(
    "bundles",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("kind", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    #: The signed envelope exactly as gateways receive it.
    Column("envelope", Text, nullable=False),
    UniqueConstraint("territory_id", "kind", "version"),
)

badges = Table(
    "badges",
    metadata,
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    #: HMAC of the raw card number with the territory's badge key; the number is not kept.
    Column("pseudonym", LargeBinary(16), nullable=False),
    #: A category name of the territory's policy rules.
    Column("category", String(_NAME), nullable=False),
    #: UTC seconds; NULL means no start, or no end.
    Column("valid_from_s", BigInteger),
    Column("valid_until_s", BigInteger),
    #: Revoked badges stay until their validity ends, so gates answer "revoked".
    Column("revoked_ms", BigInteger),
    Column("master", Boolean, nullable=False),
    #: The operator's own reference (a berth, a contract); stays at the hub, never in bundles.
    Column("label", String(128)),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("territory_id", "pseudonym"),
)

policy_rules = Table(
    "policy_rules",
    metadata,
    #: One current rules document per territory.
    Column("territory_id", ForeignKey("territories.id"), primary_key=True),
    #: The rules as JSON, as checked by edge_agent.codecs.access_policy.parse_rules.
    Column("rules", Text, nullable=False),
    #: SHA-256 of the rules' canonical JSON: tells two uploads apart at a glance.
    Column("digest", String(64), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

alarm_acks = Table(
    "alarm_acks",
    metadata,
    #: The ``alarm.raised`` event acknowledged, by its key: an alarm is its raise.
    Column("stream_id", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    _territory_fk(),
    Column("acked_ms", BigInteger, nullable=False),
    #: Who: the operator token's name, or the name given on the command line.
    Column("acked_by", String(_NAME), nullable=False),
    #: The operator token that acknowledged; NULL from the command line.
    Column("token_id", ForeignKey("operator_tokens.id")),
    Column("comment", Text, nullable=False),
)

open_datasets = Table(
    "open_datasets",
    metadata,
    #: A dataset an operator published for the territory (sync_server/opendata/datasets.py);
    #: no row, not published.
    Column("territory_id", ForeignKey("territories.id"), primary_key=True),
    Column("dataset", String(32), primary_key=True),
    Column("enabled_ms", BigInteger, nullable=False),
    Column("enabled_by", String(_NAME), nullable=False),
)

open_data_places = Table(
    "open_data_places",
    metadata,
    #: What open data needs about a device that gateways do not send: where it is, and for a
    #: car park the national schema's fields (sync_server/opendata/places.py).
    Column("id", Integer, primary_key=True),
    _territory_fk(),
    Column("gateway_id", ForeignKey("gateways.id"), nullable=False),
    Column("device", String(128), nullable=False),
    Column("longitude", Double),
    Column("latitude", Double),
    #: JSON object of the other fields (name, address, national car-park fields).
    Column("details", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("gateway_id", "device"),
)

ui_users = Table(
    "ui_users",
    metadata,
    Column("id", Integer, primary_key=True),
    #: NULL for an admin, who sees every territory.
    Column("territory_id", ForeignKey("territories.id")),
    #: Signs in with it; unique across territories, so sign-in needs no territory.
    Column("name", String(_NAME), nullable=False, unique=True),
    #: ``staff``, ``operator`` or ``admin`` (sync_server/ui/roles.py).
    Column("role", String(16), nullable=False),
    #: argon2id, in its PHC string form (parameters and salt included).
    Column("password_hash", String(255), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

ui_sessions = Table(
    "ui_sessions",
    metadata,
    #: SHA-256 of the cookie's secret: a database dump signs nobody in.
    Column("id", String(64), primary_key=True),
    #: Who: a staff account, or an operator token (exactly one of the two).
    Column("user_id", ForeignKey("ui_users.id")),
    Column("token_id", ForeignKey("operator_tokens.id")),
    Column("created_ms", BigInteger, nullable=False),
    #: Idle expiry counts from here; refreshed at most once a minute.
    Column("seen_ms", BigInteger, nullable=False),
    #: An admin's chosen territory (from a form, never from a URL); NULL: none chosen.
    Column("territory_id", ForeignKey("territories.id")),
)

ui_signin_failures = Table(
    "ui_signin_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("client", String(_NAME), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index(None, "client", "at_ms"),
)

ui_signin_links = Table(
    "ui_signin_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("ui_users.id"), nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
)


retention_periods = Table(
    "retention_periods",
    metadata,
    #: How long a territory's raw readings are kept at least (sync_server/retention.py); no
    #: row: kept for ever.
    Column("territory_id", ForeignKey("territories.id"), primary_key=True),
    Column("keep_days", Integer, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

dropped_months = Table(
    "dropped_months",
    metadata,
    #: Months of readings dropped by retention (sync_server/db/partitions.py): a replay of a
    #: reading that was in one is not stored again, which would count it twice in the rollups.
    Column("start_ms", BigInteger, primary_key=True),
    Column("end_ms", BigInteger, nullable=False),
    Column("dropped_ms", BigInteger, nullable=False),
)

rollup_marks = Table(
    "rollup_marks",
    metadata,
    #: Every reading of the stream up to ``rolled_seq`` is in the rollups (sync_server/rollups.py).
    Column("stream_id", ForeignKey("streams.id"), primary_key=True),
    Column("rolled_seq", BigInteger, nullable=False),
    Column("rolled_ms", BigInteger, nullable=False),
)

rollup_pending = Table(
    "rollup_pending",
    metadata,
    #: Readings stored below a stream's acknowledged mark (a replay filling a hole): they may
    #: be below the rollup mark too, so the next rollup pass adds them.
    Column("id", Integer, primary_key=True),
    Column("stream_id", ForeignKey("streams.id"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Index(None, "stream_id"),
)


def _rollup_table(name: str) -> Table:
    """Per series and UTC hour (or day): the finite values' count, sum, min and max, and the
    last value (the largest at the latest timestamp: a counter's index at the bucket's end)."""
    return Table(
        name,
        metadata,
        Column("series_id", Integer, primary_key=True),
        Column("bucket_ms", BigInteger, primary_key=True),
        Column("count", BigInteger, nullable=False),
        Column("sum", Double, nullable=False),
        Column("min", Double, nullable=False),
        Column("max", Double, nullable=False),
        Column("last_ts_ms", BigInteger, nullable=False),
        Column("last_value", Double, nullable=False),
    )


rollups_hourly = _rollup_table("rollups_hourly")
rollups_daily = _rollup_table("rollups_daily")
