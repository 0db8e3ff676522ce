"""docs/install-hub.md, the Dockerfile and compose.yaml agree with the code, and the backup
and restore commands the page shows run as written against a real PostgreSQL.

The page's ```bash blocks are the operator's shell. Those that need Docker cannot run here
(no daemon); each of their commands is checked against compose.yaml and, where it runs a hub
command, against the hub's own parser. The others (pg_dump, pg_restore) run for real.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select

from simulators.hub_process import demo_engine
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.schema import metadata
from tests.helpers.doc_commands import ROOT, Block, blocks, envvars, parse_error
from tests.helpers.postgres import fresh_database, require_postgres

PAGE = "docs/install-hub.md"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
#: The image's data volume, where the signing key lives.
HUB_VOLUME = "/var/lib/ponton-hub"


def _bash(heading: str) -> list[Block]:
    return [b for b in blocks(PAGE) if b.lang == "bash" and b.heading == heading]


def _lines(block: Block) -> list[str]:
    return [line for line in block.text.splitlines() if line.strip()]


def _docker_lines() -> Iterator[list[str]]:
    for block in blocks(PAGE):
        if block.lang == "bash":
            yield from (shlex.split(line.split(" > ")[0].split(" < ")[0])
                        for line in _lines(block) if line.startswith("docker "))


def _instruction(name: str) -> list[str]:
    """Every argument list of one Dockerfile instruction, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines()
            if line.startswith(f"{name} ")]


# -- the image --------------------------------------------------------------------------------


def test_the_image_is_multi_stage_slim_and_runs_unprivileged() -> None:
    bases = _instruction("FROM")
    assert len(bases) == 2
    assert all(base.split()[0].startswith("python:3.11-slim") for base in bases)
    final = DOCKERFILE[DOCKERFILE.rindex("\nFROM "):]
    assert re.search(r"^USER ponton$", final, re.MULTILINE)
    assert final.index("USER ponton") < final.index("ENTRYPOINT")
    assert "--no-index" in final  # the runtime stage installs only the built wheels
    assert "'ponton[hub]'" in final


def test_the_image_starts_the_hub_and_migrates_first() -> None:
    (entrypoint,) = _instruction("ENTRYPOINT")
    (command,) = _instruction("CMD")
    argv = [*json.loads(entrypoint), *json.loads(command)]
    assert argv[:2] == ["sync-server", "serve"]
    assert "--upgrade-db" in argv
    assert parse_error(tuple(argv)) is None
    assert _instruction("EXPOSE") == [argv[argv.index("--port") + 1]]
    assert f'PONTON_HUB_DATA_DIR={HUB_VOLUME}' in DOCKERFILE


def test_the_image_builds() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60,
                          check=False)
    if info.returncode != 0:
        pytest.skip("Docker daemon not reachable (docker info failed: no dockerd on this "
                    "machine); the Dockerfile is only checked statically")
    built = subprocess.run([docker, "build", "-t", "ponton-hub:test", str(ROOT)],
                           capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run([docker, "run", "--rm", "ponton-hub:test", "--help"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    user = subprocess.run([docker, "run", "--rm", "--entrypoint", "id", "ponton-hub:test",
                           "-u"], capture_output=True, text=True, timeout=120, check=False)
    assert user.stdout.strip() != "0"


# -- compose ----------------------------------------------------------------------------------


def test_compose_runs_the_hub_on_its_postgresql_once_it_answers() -> None:
    hub, db = COMPOSE["services"]["hub"], COMPOSE["services"]["db"]
    assert hub["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "pg_isready" in db["healthcheck"]["test"]
    url = hub["environment"]["PONTON_HUB_DATABASE_URL"]
    user, password = db["environment"]["POSTGRES_USER"], "${PONTON_DB_PASSWORD}"
    assert url == f"postgresql://{user}:{password}@db/{db['environment']['POSTGRES_DB']}"
    assert set(hub["environment"]) <= envvars()  # each one an option of the hub reads
    assert f"hubdata:{HUB_VOLUME}" in hub["volumes"]
    assert hub["ports"] == ["127.0.0.1:8600:8600"]  # for the proxy only


def _hub_command(argv: list[str]) -> tuple[str, ...] | None:
    """The ``sync-server`` command a ``docker compose run|exec`` line runs in the hub."""
    action, *rest = argv[2:]
    service_at = next(i for i, word in enumerate(rest) if not word.startswith("-"))
    after = rest[service_at + 1:]
    if rest[service_at] != "hub":
        return None
    if action == "run":  # the image's entrypoint is sync-server
        return ("sync-server", *after)
    return ("sync-server", *after[1:]) if after[:1] == ["sync-server"] else None


def test_every_docker_command_of_the_page_names_what_exists() -> None:
    services = set(COMPOSE["services"])
    hub_commands = 0
    for argv in _docker_lines():
        if argv[1] == "build":
            assert argv[2:] == ["-t", "ponton-hub", "."]
            continue
        assert argv[1] == "compose", argv
        action = argv[2]
        words = [word for word in argv[3:] if not word.startswith("-")]
        assert action in {"run", "exec", "cp", "up", "stop", "start"}, argv
        if action == "cp":
            (inside,) = [word for word in words if ":" in word]
            service, path = inside.split(":", 1)
            assert service in services
            assert path.startswith(HUB_VOLUME + "/")
            continue
        assert set(words[:1]) <= services, argv
        command = _hub_command(argv) if action in {"run", "exec"} else None
        if command is not None:
            assert parse_error(command) is None, (argv, parse_error(command))
            hub_commands += 1
    assert hub_commands >= 3


# -- the reverse proxy ------------------------------------------------------------------------


def test_the_proxy_examples_forward_to_the_hub_with_the_headers_it_reads() -> None:
    (nginx,) = [b.text for b in blocks(PAGE) if b.lang == "nginx"]
    (caddy,) = [b.text for b in blocks(PAGE) if b.lang == "caddy"]
    assert "proxy_pass http://127.0.0.1:8600;" in nginx
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert "reverse_proxy 127.0.0.1:8600" in caddy  # Caddy sets both headers itself
    serves = [b.text for b in blocks(PAGE) if b.lang == "sh" and "serve" in b.text]
    assert any("--forwarded-allow-ips 127.0.0.1" in serve for serve in serves)


# -- backups ----------------------------------------------------------------------------------


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {table.name: sorted((tuple(row) for row in conn.execute(select(table))),
                                   key=repr) for table in metadata.sorted_tables}


def _run_block(block: Block, cwd: Path, database_url: str) -> None:
    env = {**os.environ, "PONTON_HUB_DATABASE_URL": database_url}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{block.path}:{block.line}\n{done.stderr}"


@pytest.fixture
def hub_with_data(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    require_postgres()
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed (apt install postgresql-client)")
    with fresh_database("backup") as url:
        engine = demo_engine(tmp_path, url)  # its badge seal beside, as a hub keeps it
        try:
            upgrade(engine)
            for territory in ("dunkerque", "caux-seine"):
                admin.add_territory(engine, territory)
                admin.add_site(engine, territory, "port-est")
                admin.add_gateway(engine, territory, "port-est", None, expires_in_s=3600,
                                  reissue=False)
                admin.add_operator_token(engine, territory, "crisis-cell")
            yield url, engine
        finally:
            engine.dispose()


def test_the_documented_backup_restores_every_row(
    hub_with_data: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = hub_with_data
    plain = url.replace("+psycopg", "")  # the page's URL, as libpq and the hub both read it
    (backup,) = _bash("Backups")[:1]
    (restore,) = [b for b in _bash("Restoring") if not b.text.startswith("docker")]
    before = _rows(engine)
    assert sum(map(len, before.values())) >= 9
    _run_block(backup, tmp_path, plain)
    assert (tmp_path / "ponton-hub.dump").stat().st_size > 0

    with fresh_database("restore") as empty:
        _run_block(restore, tmp_path, empty.replace("+psycopg", ""))
        restored = demo_engine(tmp_path, empty)
        try:
            assert _rows(restored) == before
            admin.add_territory(restored, "toulon")  # sequences restored: no key reused
        finally:
            restored.dispose()

    with engine.begin() as conn:  # a damaged database: restored over, in place
        conn.execute(metadata.tables["operator_tokens"].delete())
    _run_block(restore, tmp_path, plain)
    assert _rows(engine) == before


def test_a_damaged_dump_fails_the_backup_check(tmp_path: Path) -> None:
    """The backup block's second line reads the dump back: it must refuse a truncated one."""
    if shutil.which("pg_restore") is None:
        pytest.skip("pg_restore is not installed (apt install postgresql-client)")
    (backup,) = _bash("Backups")[:1]
    check = _lines(backup)[1]
    (tmp_path / "ponton-hub.dump").write_bytes(b"PGDMP\x01\x0e\x00truncated")
    done = subprocess.run(["bash", "-c", check], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode != 0
