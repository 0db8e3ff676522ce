"""Parts of the dashboard tested without a browser: the catalogs are complete, charts are
drawn from buckets, and the session cookie is Secure when the hub is reached over TLS."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from simulators.hub_process import demo_engine
from sync_server import admin
from sync_server.app import create_app
from sync_server.db.migrate import upgrade
from sync_server.settings import HubSettings
from sync_server.ui.accounts import add_user
from sync_server.ui.charts import ChartFrame, line_chart, nice_ticks
from sync_server.ui.i18n import LANGUAGES, Formats, translations

UI = Path(__file__).resolve().parents[1] / "sync_server" / "ui"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _source_messages() -> set[str]:
    """Every message the templates and code mark, as Babel's extraction finds them."""
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(UI), method_map, options,
                                                keywords={"_": None, "gettext": None,
                                                          "ngettext": (1, 2), "N_": None}):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_in_the_catalog(language: str) -> None:
    path = UI / "locale" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    ids = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog if m.id}
    missing = _source_messages() - ids
    assert missing == set(), f"run pybabel update (docs/dashboard.md): {sorted(missing)}"
    if language != "fr":
        return
    for message in catalog:
        if not message.id:
            continue
        forms = [str(form) for form in (message.string if isinstance(message.string, tuple)
                                        else (message.string,))]
        source = str(message.id[0] if isinstance(message.id, tuple) else message.id)
        assert all(forms), f"no French for {source!r}"
        for form in forms:
            assert set(_PLACEHOLDER.findall(form)) <= set(_PLACEHOLDER.findall(source)), \
                source


def test_french_is_compiled_from_the_po_file() -> None:
    french = translations("fr")
    assert french.gettext("Overview") == "Vue d'ensemble"
    assert french.ngettext("%(count)s open alarm", "%(count)s open alarms", 2) == \
        "%(count)s alarmes ouvertes"
    assert translations("en").gettext("Overview") == "Overview"


def test_formats_follow_the_language() -> None:
    assert Formats("fr").number(1234.5) == "1\u202f234,5"
    assert Formats("en").number(1234.5) == "1,234.5"
    assert Formats("fr").seconds(-1500) == "-1,5 s"
    assert Formats("en").time(None) == "–"
    assert Formats("fr").time(1_764_000_000_000) == "24/11/2025 17:00"  # Paris time


def test_nice_ticks_are_round() -> None:
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(229.3, 231.8) == [229.5, 230.0, 230.5, 231.0, 231.5]
    assert nice_ticks(5, 5) == [5]


def _frame(title: str = "berth <a1> voltage") -> ChartFrame:
    return ChartFrame(0, 10 * 60_000, 60_000, [(300_000, "12:05")], str, title)


def test_a_chart_breaks_its_line_where_buckets_are_missing() -> None:
    buckets = [{"bucket_ms": m * 60_000, "avg": 230.0 + m, "min": 229.0, "max": 232.0 + m}
               for m in (0, 1, 2, 6, 7)]
    svg = str(line_chart(buckets, _frame()))
    assert svg.count("<polyline") == 2  # minutes 0-2, then 6-7
    assert svg.count("<polygon") == 2
    assert "berth &lt;a1&gt; voltage" in svg  # names are escaped
    assert "<a1>" not in svg
    lone = str(line_chart([{"bucket_ms": 0, "avg": 1.0, "min": 1.0, "max": 1.0}], _frame()))
    assert lone.count("<circle") == 1
    assert "<polyline" not in lone
    assert "<polyline" not in str(line_chart([], _frame()))


async def test_the_session_cookie_is_secure_over_tls(tmp_path: Path) -> None:
    engine = demo_engine(tmp_path)
    upgrade(engine)
    admin.add_territory(engine, "dunkerque")
    add_user(engine, "alice", "operator", "dunkerque", "correct horse battery")
    engine.dispose()
    app = create_app(HubSettings(data_dir=tmp_path, demo=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://hub.test") as client:
        form = await client.get("/ui/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        assert "Secure" in form.headers["set-cookie"]
        answer = await client.post("/ui/signin", data={
            "csrf": token.group(1), "name": "alice", "password": "correct horse battery"})
    assert answer.status_code == 303
    cookie = next(value for key, value in answer.headers.multi_items()
                  if key == "set-cookie" and value.startswith("ponton_session="))
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
