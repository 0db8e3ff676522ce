"""Every module says what it offers: an ``__all__`` whose names exist, listed once, sorted."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import edge_agent
import simulators
import sync_server

SKIPPED = {"edge_agent.__main__", "simulators.modbus.__main__", "sync_server.__main__",
           "sync_server.migrations.env"}


def _modules() -> list[str]:
    names = []
    for package in (edge_agent, simulators, sync_server):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name not in SKIPPED:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_module_lists_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert module.__file__ is not None
        assert module.__file__.endswith("__init__.py"), f"{name} has no __all__"
        return
    assert len(set(exported)) == len(exported), f"{name}: a name is listed twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}: __all__ lists names it does not define: {missing}"
    assert list(exported) == sorted(exported, key=lambda n: (not n.isupper(), n)), (
        f"{name}: keep __all__ sorted (constants first)")
