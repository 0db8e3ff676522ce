"""Where the agent's import memory goes: per package, the run path against eager imports.

Each measurement is a fresh interpreter that reads its own ``/proc/self/smaps_rollup``
before and after importing, so the figures are RSS, PSS and USS (private pages) of imports
alone, without configuration, connections or polling (bench/bench_footprint.py has those).

- run path: what ``edge-agent run`` imports for a provisioned, Modbus-only gateway of
  200 meters: ``edge_agent.daemon`` plus the modules ``edge_agent.features`` says that
  gateway needs (sync client, bundle store, puller; no access, TIC, LoRa, CLI);
- eager: every module of ``edge_agent`` and its CLI, what ``run`` would pay with every
  feature imported (measured in the same run);
- before: the run path's modules at ``--before`` (a git commit, default the last one before
  the lean agent), its source exported with ``git archive``: what ``run`` imported then
  (the lazily imported modules it does not have are left out; the daemon imported them).

Also the configuration's load time for 200 SDM120s on 200 TCP buses, before and after
(``load_config``, profiles included, in a fresh interpreter each time).

For each set the packages are then imported one group at a time in the order the set first
loaded them (dependencies before ``edge_agent``'s own modules), and each group is charged
what RSS and USS grew by: a marginal decomposition that sums to the whole, so a package
shared by two groups is charged to the first. Medians over ``--runs`` interpreters.

Run: .venv/bin/python bench/bench_imports.py [--runs 3] [--top 25] [--before COMMIT]
"""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import edge_agent
from edge_agent.features import Features

#: Run in each child: import ``modules`` grouped as given, print the memory after each group.
_CHILD = r"""
import importlib, json, sys, time
def memory():
    fields = {}
    with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
                fields[parts[0]] = int(parts[1]) / 1024
    return [fields["Rss:"], fields["Pss:"], fields["Private_Clean:"] + fields["Private_Dirty:"]]
groups = json.loads(sys.argv[1])
before = set(sys.modules)
rows = [["(interpreter)", memory(), 0.0]]
for name, modules in groups:
    start = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    rows.append([name, memory(), time.perf_counter() - start])
loaded = [m for m in sys.modules if m not in before]
print(json.dumps({"rows": rows, "loaded": loaded}))
"""

#: Run in each child: the seconds ``load_config`` takes on ``argv[1]``.
_LOAD_CONFIG = r"""
import sys, time
from pathlib import Path
from edge_agent.config import load_config
start = time.perf_counter()
config = load_config(Path(sys.argv[1]))
print(time.perf_counter() - start)
"""

#: The last commit before the lean agent (features imported lazily, no cryptography).
BEFORE_LEAN = "827a86a"
ROOT = Path(__file__).resolve().parent.parent
METERS = 200

#: Third-party and standard-library groups are named by their top-level package; the
#: agent's own by their subpackage, so the table says which part of the agent pulls what.
_OWN = "edge_agent"


@dataclass(frozen=True, slots=True)
class Charge:
    """What one group of modules added to the interpreter."""

    group: str
    modules: int
    rss_mib: float
    uss_mib: float
    import_ms: float


@dataclass(frozen=True, slots=True)
class Source:
    """Where a child finds ``edge_agent``: first on its path, run from a directory without
    one (``python -c`` puts its working directory first)."""

    path: Path
    workdir: Path

    def run(self, *args: str) -> str:
        """``python ARGS`` with this source; its standard output."""
        env = {**os.environ, "PYTHONPATH": str(self.path)}
        return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              check=True, env=env, cwd=self.workdir).stdout


def child(groups: Sequence[tuple[str, list[str]]], source: Source) -> dict[str, object]:
    """Run the child interpreter on ``groups``; its rows and the modules it loaded."""
    result: dict[str, object] = json.loads(source.run("-c", _CHILD, json.dumps(groups)))
    return result


def export(commit: str, directory: Path) -> Path:
    """``edge_agent`` and the shipped profiles at ``commit``, extracted in ``directory``."""
    subprocess.run(f"git -C {ROOT} archive {commit} edge_agent device_profiles "
                   f"| tar -x -C {directory}", shell=True, check=True)
    return directory


def gateway_file(directory: Path) -> Path:
    """200 SDM120s, one per TCP bus (nothing listens: the file is only loaded)."""
    lines = ['[gateway]', 'id = "bench-imports"', 'data_dir = "data"', '']
    for index in range(METERS):
        lines += ['[[buses]]', f'name = "lan-{index:03d}"', f'tcp = "127.0.0.1:{20000 + index}"',
                  '', '[[devices]]', f'name = "meter-{index:03d}"', f'bus = "lan-{index:03d}"',
                  'profile = "eastron-sdm120"', 'unit = 1', '']
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def load_seconds(source: Source, config: Path, runs: int) -> float:
    """Median seconds ``load_config`` takes on ``config``, a fresh interpreter each run."""
    return statistics.median(float(source.run("-c", _LOAD_CONFIG, str(config)))
                             for _ in range(runs))


def run_path_modules() -> list[str]:
    """``edge_agent.daemon`` and what a provisioned Modbus-only gateway imports lazily."""
    return ["edge_agent.daemon", *Features(provisioned=True).modules()]


def modules_in(modules: list[str], root: Path) -> list[str]:
    """The ``modules`` that exist under ``root`` (a module, or a package's ``__init__``)."""
    def exists(module: str) -> bool:
        path = root.joinpath(*module.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    return [module for module in modules if exists(module)]


def eager_modules() -> list[str]:
    """Every module of the agent and its CLI."""
    names = [info.name for info in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.")]
    return ["edge_agent.daemon", "edge_agent.cli", *sorted(n for n in names
                                                        if n != "edge_agent.__main__")]


def group_of(module: str) -> str:
    """The group a module is charged to: ``edge_agent.sync``, ``pydantic``, ``ssl``..."""
    parts = module.split(".")
    if parts[0] == _OWN and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0].lstrip("_") or module


def grouped(loaded: list[str]) -> list[tuple[str, list[str]]]:
    """Loaded modules grouped, in first-load order, the agent's own groups last."""
    groups: dict[str, list[str]] = {}
    for module in loaded:
        groups.setdefault(group_of(module), []).append(module)
    own = [(name, mods) for name, mods in groups.items() if name.startswith(_OWN)]
    others = [(name, mods) for name, mods in groups.items() if not name.startswith(_OWN)]
    return others + own


def measure(modules: list[str], runs: int,
            source: Source) -> tuple[list[float], list[Charge]]:
    """(total RSS/PSS/USS of the imports, charges per group), medians over ``runs``."""
    first = child([("all", modules)], source)
    loaded = [m for m in first["loaded"] if isinstance(m, str)]  # type: ignore[attr-defined]
    groups = grouped(loaded)
    samples = [child(groups, source)["rows"] for _ in range(runs)]
    charges = []
    for index, (name, mods) in enumerate(groups, start=1):
        rss = [s[index][1][0] - s[index - 1][1][0] for s in samples]  # type: ignore[index]
        uss = [s[index][1][2] - s[index - 1][1][2] for s in samples]  # type: ignore[index]
        seconds = [s[index][2] for s in samples]  # type: ignore[index]
        charges.append(Charge(name, len(mods), statistics.median(rss), statistics.median(uss),
                              1000 * statistics.median(seconds)))
    totals = [[s[-1][1][i] - s[0][1][i] for s in samples] for i in range(3)]  # type: ignore[index]
    return [statistics.median(t) for t in totals], charges


def print_table(title: str, totals: list[float], charges: list[Charge], top: int) -> None:
    """The totals, then the ``top`` groups by RSS."""
    count = sum(c.modules for c in charges)
    print(f"\n{title}: {count} modules, imports add RSS {totals[0]:.1f} MiB, "
          f"PSS {totals[1]:.1f} MiB, USS {totals[2]:.1f} MiB")
    print(f"{'group':<28} {'modules':>7} {'RSS MiB':>8} {'USS MiB':>8} {'import ms':>9}")
    for charge in sorted(charges, key=lambda c: -c.rss_mib)[:top]:
        print(f"{charge.group:<28} {charge.modules:>7} {charge.rss_mib:>8.2f} "
              f"{charge.uss_mib:>8.2f} {charge.import_ms:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interpreters per set (median)")
    parser.add_argument("--top", type=int, default=25, help="groups shown per set")
    parser.add_argument("--before", default=BEFORE_LEAN, metavar="COMMIT",
                        help="the agent to compare with (a git commit of this repository)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        directory = Path(tmp)
        (directory / "before").mkdir()
        after = Source(ROOT, directory)
        before = Source(export(args.before, directory / "before"), directory)
        run_totals, run_charges = measure(run_path_modules(), args.runs, after)
        eager_totals, eager_charges = measure(eager_modules(), args.runs, after)
        before_totals, before_charges = measure(modules_in(run_path_modules(), before.path),
                                                args.runs, before)
        config = gateway_file(directory)
        load_before = load_seconds(before, config, args.runs)
        load_after = load_seconds(after, config, args.runs)
    print_table("run path (provisioned, Modbus only)", run_totals, run_charges, args.top)
    print_table(f"before ({args.before}: what run imported)", before_totals, before_charges,
                args.top)
    print_table("eager (every agent module and the CLI)", eager_totals, eager_charges,
                args.top)
    names = {c.group for c in run_charges}
    left_out = sorted((c for c in before_charges if c.group not in names),
                      key=lambda c: -c.rss_mib)
    print("\nleft out of the run path since before: "
          + ", ".join(f"{c.group} {c.rss_mib:.1f}" for c in left_out[:args.top]))
    for label, totals in (("before", before_totals), ("eager", eager_totals)):
        print(f"run path / {label}: RSS {run_totals[0] / totals[0]:.2f}, "
              f"USS {run_totals[2] / totals[2]:.2f} "
              f"({run_totals[0]:.1f} against {totals[0]:.1f} MiB)")
    print(f"load_config, {METERS} SDM120s, median of {args.runs}: {load_after:.3f} s, before "
          f"{load_before:.3f} s ({load_after / load_before:.3f})")


if __name__ == "__main__":
    main()
