"""Log records as JSON lines, for log shippers (Loki, journald exports, ELK) on both ends.

Pure formatting: one JSON object per line with the time in UTC ISO 8601, the level, the
logger's name and the message, plus the traceback when there is one. Both the agent and the
hub use it, so both write the same fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal, get_args

__all__ = ["LOG_FORMATS", "JsonLineFormatter", "LogFormat"]

#: What ``--log-format`` accepts on both ends.
LogFormat = Literal["plain", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)


class JsonLineFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message"[, "exception"]}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)
