"""A gateway installs the agent alone: no hub package is required, none is imported.

The static checks read edge_agent's source (every ``import``, also inside functions) against
the distribution's metadata; the slow ones build ``make dist``'s wheelhouse (for this
machine's platform) and run docs/install-gateway.md's install commands as written (paths
moved to a scratch directory): ``ponton`` alone, offline, in a fresh venv; then run it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sync_server.entry import HUB_ONLY_MODULES
from tests.helpers.doc_commands import ROOT, blocks

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
UNIT = ROOT / "packaging" / "systemd" / "ponton-agent.service"
#: Where docs/install-gateway.md puts the venv and the wheelhouse; a scratch directory here.
DOC_VENV, DOC_WHEELHOUSE = "/opt/ponton/venv", "/tmp/wheelhouse"
#: Imported by the agent only when their optional extra is installed (``wedge``).
OPTIONAL_MODULES = frozenset({"evdev"})


def _imported_modules(package: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files that import it, for every .py under ``package``."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def _requirement_closure(requirements: list[str]) -> set[str]:
    """Every distribution ``requirements`` pull in, as installed here (extras they name too)."""
    seen: set[str] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        key = f"{canonicalize_name(requirement.name)}{sorted(requirement.extras)}"
        if key in seen:
            continue
        seen.add(key)
        for text in importlib.metadata.requires(requirement.name) or []:
            sub = Requirement(text)
            marker = sub.marker
            if marker is None or any(marker.evaluate({"extra": extra})
                                     for extra in requirement.extras or {""}):
                pending.append(sub)
    return {key.split("[")[0] for key in seen}


def _modules_of(distributions: set[str]) -> set[str]:
    """Top-level modules the installed ``distributions`` provide."""
    return {module for module, owners in importlib.metadata.packages_distributions().items()
            if any(canonicalize_name(owner) in distributions for owner in owners)}


def test_the_installed_version_is_the_one_the_agent_reports() -> None:
    """pyproject.toml reads the version from edge_agent/__init__.py: one place to bump."""
    import edge_agent

    assert importlib.metadata.version("ponton") == edge_agent.__version__
    assert "version" in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dynamic"]


def test_the_agent_never_imports_a_hub_package() -> None:
    imported = _imported_modules(ROOT / "edge_agent")
    hub_side = {module: sorted(files) for module, files in imported.items()
                if module in HUB_ONLY_MODULES | {"sync_server"}}
    assert hub_side == {}


def test_every_module_the_agent_imports_comes_with_the_agent_alone() -> None:
    agent = _requirement_closure(PYPROJECT["project"]["dependencies"])
    provided = _modules_of(agent) | set(sys.stdlib_module_names) | {"edge_agent", "device_profiles"}
    missing = {module: sorted(files) for module, files
               in _imported_modules(ROOT / "edge_agent").items()
               if module not in provided | OPTIONAL_MODULES}
    assert missing == {}
    assert not {"fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg"} & agent


def test_the_hub_extra_brings_every_hub_only_package_and_dev_brings_the_hub() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    hub = _requirement_closure(extras["hub"])
    assert HUB_ONLY_MODULES - {"psycopg_binary"} <= _modules_of(hub)
    assert "ponton[hub]" in extras["dev"]


@pytest.fixture(scope="module")
def agent_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding ``ponton`` alone, installed offline from the
    wheelhouse ``make dist`` builds (for this machine's platform instead of a Pi's)."""
    scratch = tmp_path_factory.mktemp("agent-only")
    wheelhouse = scratch / "wheelhouse"
    machine = platform.machine()
    built = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "dist", f"VENV={sys.prefix}",
         "-o", f"{sys.prefix}/bin/.installed", f"WHEELHOUSE={wheelhouse}",
         f"WHEEL_PYTHON={sys.version_info.major}.{sys.version_info.minor}",
         f"WHEEL_PLATFORMS=manylinux2014_{machine} manylinux_2_28_{machine}"],
        capture_output=True, text=True, timeout=280, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    env_dir = scratch / "venv"
    for line in _documented_install():  # docs/install-gateway.md's own commands
        argv = [word.replace(DOC_VENV, str(env_dir)).replace(DOC_WHEELHOUSE, str(wheelhouse))
                for word in shlex.split(line)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    assert (wheelhouse / UNIT.name).read_bytes() == UNIT.read_bytes()
    return env_dir / "bin"


def _documented_install() -> list[str]:
    """The lines of docs/install-gateway.md's step 2 that build the virtual environment."""
    (block,) = [b for b in blocks("docs/install-gateway.md")
                if b.lang == "bash" and b.heading.startswith("2. ")]
    lines = [line for line in block.text.splitlines()
             if line.startswith(("python3 -m venv", f"{DOC_VENV}/bin/"))]
    assert len(lines) == 3, lines
    return lines


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONTON_", "PYTHON"))}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          env=env, cwd="/")


@pytest.mark.slow
def test_a_fresh_agent_only_install_runs_the_agent(agent_only: Path) -> None:
    installed = {canonicalize_name(line.split("==")[0]) for line in _run(
        str(agent_only / "python"), "-m", "pip", "freeze", "--all").stdout.splitlines()}
    assert not {"fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg"} & installed

    helped = _run(str(agent_only / "edge-agent"), "--help")
    assert helped.returncode == 0, helped.stderr
    assert "provision" in helped.stdout

    every_module = (
        "import importlib, pkgutil, sys, edge_agent\n"
        "names = [m.name for m in pkgutil.walk_packages(edge_agent.__path__, 'edge_agent.')\n"
        "         if not m.name.endswith('__main__')]\n"
        "for name in names: importlib.import_module(name)\n"
        f"hub = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HUB_ONLY_MODULES)})\n"
        "print(len(names), hub)\n")
    imported = _run(str(agent_only / "python"), "-c", every_module)
    assert imported.returncode == 0, imported.stderr
    count, hub = imported.stdout.split(" ", 1)
    assert int(count) > 50
    assert hub.strip() == "[]"


@pytest.mark.slow
def test_sync_server_without_the_hub_extra_says_what_to_install(agent_only: Path) -> None:
    refused = _run(str(agent_only / "sync-server"), "--help")
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: sync-server needs the hub's packages (")
    assert "pip install 'ponton[hub]'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_wheelhouse_builds_the_source_only_dependencies_the_agent_declares() -> None:
    """``make dist`` builds wheels of what PyPI ships as source only: the same requirement."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = [line for line in makefile.splitlines() if line.startswith("SOURCE_ONLY ?=")]
    built = {str(Requirement(text.strip("'"))) for text in line.split("?=")[1].split()}
    assert built
    assert built <= {str(Requirement(text)) for text in PYPROJECT["project"]["dependencies"]}


@pytest.mark.slow
def test_the_documented_gateway_file_validates_in_the_agent_only_install(
    agent_only: Path, tmp_path: Path
) -> None:
    (block,) = [b for b in blocks("docs/install-gateway.md")
                if b.lang == "bash" and b.heading == "3. The gateway file"]
    (line,) = [line for line in block.text.splitlines() if "config validate" in line]
    (toml,) = [b.text for b in blocks("docs/install-gateway.md")
               if b.lang == "toml" and b.heading == "3. The gateway file"]
    config = tmp_path / "gateway.toml"
    config.write_text(toml, encoding="utf-8")
    argv = shlex.split(line)
    argv = argv[argv.index("--") + 1 if "--" in argv else 3:]  # as the ponton user: here, us
    argv = [word.replace(f"{DOC_VENV}/bin", str(agent_only))
            .replace("/etc/ponton/gateway.toml", str(config)) for word in argv]
    checked = _run(*argv)
    assert checked.returncode == 0, checked.stdout + checked.stderr
