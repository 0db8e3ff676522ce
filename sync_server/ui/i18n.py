"""Languages of the dashboard: French by default, English on request, through gettext.

The catalogs are the ``.po`` files under ``locale/`` (the messages are written in English
in the templates and code). They are compiled in memory when the hub starts, with Babel,
so a fresh clone or an installed wheel never depends on a separately built ``.mo`` file
being up to date. docs/dashboard.md says how to extract and update them.
"""

from __future__ import annotations

import gettext
import io
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "N_", "TIMEZONE", "Formats", "translations"]

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
#: Times are shown as the territories live them.
TIMEZONE = ZoneInfo("Europe/Paris")


def N_(message: str) -> str:  # noqa: N802 - the name gettext tools look for
    """Mark ``message`` for the catalogs; it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> gettext.GNUTranslations:
    """The compiled catalog of ``language`` (one of LANGUAGES)."""
    assert language in LANGUAGES
    po = files("sync_server.ui") / "locale" / language / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class Formats:
    """Numbers, times and ages in one language, for the templates."""

    def __init__(self, language: str) -> None:
        self.language = language

    def time(self, ms: int | None) -> str:
        """A UTC timestamp in ms as a local date and time, or a dash."""
        if ms is None:
            return "–"
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return format_datetime(moment, "short", tzinfo=TIMEZONE, locale=self.language)

    def pattern(self, ms: int, pattern: str) -> str:
        """A UTC timestamp in ms in a CLDR ``pattern`` ("HH:mm", "d MMM"), local time."""
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        return format_datetime(moment, pattern, tzinfo=TIMEZONE, locale=self.language)

    def age(self, ms: int | None, now_ms: int) -> str:
        """How long ago ``ms`` was ("3 minutes"), or a dash."""
        if ms is None:
            return "–"
        return format_timedelta(timedelta(milliseconds=max(0, now_ms - ms)), threshold=1.1,
                                locale=self.language)

    def seconds(self, ms: int | None) -> str:
        """A duration in ms as signed seconds with one decimal, or a dash."""
        if ms is None:
            return "–"
        return format_decimal(ms / 1000, "+#,##0.0;-#,##0.0", locale=self.language) + " s"

    def number(self, value: float | None, digits: int = 3) -> str:
        """A value as people of this language write it, or a dash."""
        if value is None:
            return "–"
        return format_decimal(round(value, digits), locale=self.language)
