"""What a gateway installs: the agent alone against the whole project before the split.

Two fresh virtual environments, built in the same run from the same wheel of this tree:

- before: the dependencies pyproject.toml declared at ``--before`` (default: the last commit
  before the split, when every install carried the hub), then ``ponton`` without them;
- after: ``pip install ponton``, the agent's dependencies alone.

Printed for each: installed size (site-packages, and without pip and setuptools, which every
venv carries), number of distributions, and the median wall time over ``--runs`` fresh
interpreters of ``import edge_agent.daemon`` (what ``edge-agent run`` loads: the service)
and of ``edge-agent --help`` (the installer's CLI).

Run: .venv/bin/python bench/bench_install.py [--runs 7] [--before 2d8fb45]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit whose default install carried FastAPI, uvicorn, SQLAlchemy, Alembic, psycopg.
BEFORE_SPLIT = "2d8fb45"
SERVICE_IMPORT = "import edge_agent.daemon"


def _pip(env: Path, *args: str) -> None:
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
                   check=True, capture_output=True, text=True)


def _requirements_at(revision: str) -> list[str]:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:pyproject.toml"],
                          check=True, capture_output=True, text=True).stdout
    requirements: list[str] = tomllib.loads(text)["project"]["dependencies"]
    return requirements


def _site_packages(env: Path) -> Path:
    (path,) = (env / "lib").glob("python3*/site-packages")
    return path


def _size_mib(path: Path, skip: tuple[str, ...] = ()) -> float:
    total = sum(f.stat().st_size for top in path.iterdir()
                if not top.name.startswith(skip) for f in [top, *top.rglob("*")]
                if f.is_file() and not f.is_symlink())
    return total / 2**20


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd="/")
    return time.perf_counter() - start


def _size_row(name: str, env: Path) -> dict[str, float | str]:
    site = _site_packages(env)
    return {
        "install": name,
        "MiB": _size_mib(site),
        "MiB without pip/setuptools": _size_mib(site, ("pip", "setuptools", "_distutils",
                                                       "pkg_resources", "distutils")),
        "distributions": len(list(site.glob("*.dist-info"))),
    }


def _timings(envs: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """Median ms per install and command, the installs taking turns run by run (a load
    change on a shared machine then weighs on both alike); one warm-up run each first."""
    commands: dict[str, Callable[[Path], list[str]]] = {
        "import edge_agent.daemon ms": lambda env: [str(env / "bin" / "python"), "-c",
                                                    SERVICE_IMPORT],
        "edge-agent --help ms": lambda env: [str(env / "bin" / "edge-agent"), "--help"],
    }
    samples: dict[str, dict[str, list[float]]] = {name: {c: [] for c in commands}
                                                  for name in envs}
    for run in range(runs + 1):
        for name, env in envs.items():
            for label, argv in commands.items():
                seconds = _seconds(argv(env))
                if run:
                    samples[name][label].append(seconds)
    return {name: {label: 1000 * statistics.median(values) for label, values in row.items()}
            for name, row in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", default=BEFORE_SPLIT, help="commit before the split")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-install-") as scratch:
        root = Path(scratch)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", str(root / "wheel"), str(ROOT)],
                       check=True, capture_output=True)
        (wheel,) = (root / "wheel").glob("ponton-*.whl")
        envs: dict[str, Path] = {}
        for name, requirements in (("before (agent + hub)", _requirements_at(args.before)),
                                   ("after (agent alone)", None)):
            env = envs[name] = root / name.split()[0]
            venv.create(env, with_pip=True)
            if requirements is None:
                _pip(env, str(wheel))
            else:
                _pip(env, *requirements)
                _pip(env, "--no-deps", str(wheel))
        timings = _timings(envs, args.runs)
        rows = [{**_size_row(name, env), **timings[name]} for name, env in envs.items()]
    print(f"python {sys.version.split()[0]}, medians of {args.runs} runs, before = "
          f"dependencies at {args.before}")
    for row in rows:
        print("  ".join(f"{key}: {value:.1f}" if isinstance(value, float) else
                        f"{key}: {value}" for key, value in row.items()))


if __name__ == "__main__":
    main()
