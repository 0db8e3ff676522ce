"""Every provisioning hint the tools print runs as printed (issue 12, items 3 and 10)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.helpers.hub import hub_cli_ok, start_hub
from tests.test_cli import edge_agent

_HINT = re.compile(r"`?(edge-agent provision [^`\n]+)`?")


def _gateway_file(directory: Path, gateway_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gateway.toml"
    path.write_text(f'[gateway]\nid = "{gateway_id}"\ndata_dir = "var"\n', encoding="utf-8")
    return path


def _run_hint(hint: str, hub_url: str, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The printed command with only URL and CODE filled in, as an installer runs it on a
    bench (the test hub is plain HTTP, so ``--insecure-http`` is added)."""
    words = [hub_url if w == "URL" else code if w == "CODE" else w for w in shlex.split(hint)]
    words.append("--insecure-http")
    assert words[:2] == ["edge-agent", "provision"]
    return subprocess.run([sys.executable, "-m", "edge_agent", *words[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_hint_of_gateway_add_runs_as_printed_in_the_gateway_directory(
    tmp_path: Path,
) -> None:
    with start_hub(tmp_path / "hub") as hub:
        hub.territory("dunkerque")
        out = hub_cli_ok(hub.data_dir, "gateway", "add", "--territory", "dunkerque", "--site",
                         "dunkerque-site", "--name", "quai-1")
        match = _HINT.search(out)
        assert match is not None, out
        assert "--config" in match.group(1)
        box = tmp_path / "box"
        _gateway_file(box, "quai-1")
        done = _run_hint(match.group(1), hub.url, "", box)
    assert done.returncode == 0, done.stderr
    assert "provisioned" in done.stdout
    assert (box / "var" / "identity.json").exists()


def test_the_hint_of_status_runs_as_printed_and_warns_of_another_gateway_id(
    tmp_path: Path,
) -> None:
    config = _gateway_file(tmp_path / "box with space", "quai-9")
    (tmp_path / "box with space" / "var").mkdir()
    (tmp_path / "box with space" / "var" / "status.json").write_text(
        '{"updated_ms": 0, "stopped": true}', encoding="utf-8")
    status = edge_agent("status", "--config", str(config))
    match = _HINT.search(status.stdout)
    assert match is not None, status.stdout
    with start_hub(tmp_path / "hub") as hub:
        hub.territory("dunkerque")
        out = hub_cli_ok(hub.data_dir, "gateway", "add", "--territory", "dunkerque", "--site",
                         "dunkerque-site", "--name", "quai-1")
        code = re.search(r"enrollment code (\S+)", out)
        assert code is not None
        done = _run_hint(match.group(1), hub.url, code.group(1), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "provisioned" in done.stdout
    warning = " ".join(done.stdout.split())
    assert "names this gateway 'quai-9' but the hub registered it as 'quai-1'" in warning


def test_the_agent_logs_a_hint_with_its_gateway_file() -> None:
    from edge_agent.sync.identity import not_provisioned

    hint = _HINT.search(not_provisioned(Path("/etc/ponton/gateway.toml")))
    assert hint is not None
    assert shlex.split(hint.group(1))[2:4] == ["--config", "/etc/ponton/gateway.toml"]
