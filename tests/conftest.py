"""Shared fixtures: leak checks and simulators run as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from simulators.hub_process import stop_process
from tests.helpers.hub import HubProcess, start_hub

# Property tests check behaviour, not speed: on a loaded machine one example past
# Hypothesis's 200 ms deadline, or slow data generation, would fail a correct test.
settings.register_profile("ponton", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ponton")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Every port, pty and task a test opens is closed by its end."""
    before = _open_fds()
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []
    assert _open_fds() - before == set()


SimulatorStarter = Callable[..., str]


@pytest.fixture
def simulator_process() -> Iterator[SimulatorStarter]:
    """Start ``python -m simulators.modbus ARGS`` and return its endpoint from the READY line."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.modbus", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        if ready[:1] != ["READY"]:
            process.kill()
            pytest.fail(f"simulator did not start: {ready} {process.communicate()[1]}")
        return ready[2]

    yield start
    for process in processes:
        stop_process(process)  # killed if it hangs: every pipe closed, whatever happens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubProcess]:
    """A hub process per module and store: SQLite always, PostgreSQL wherever it runs."""
    data_dir = tmp_path_factory.mktemp("hub")
    if request.param == "sqlite":
        with start_hub(data_dir) as running:
            yield running
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("hub") as url, start_hub(data_dir, url) as running:
        yield running
