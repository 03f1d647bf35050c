"""JSON logs: one line per event, carrying job id and GPU where there is one."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
TRACEPARENT = "traceparent"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header; None when absent, malformed or all zeros."""
    found = _TRACEPARENT.match((traceparent or "").strip().lower())
    if found is None or found.group(1) == "0" * 32:
        return None
    return found.group(1)


def traced(fields: Mapping[str, object], headers: Mapping[str, str]) -> dict[str, object]:
    """`fields` plus `trace_id` when the headers carry a valid traceparent."""
    found = trace_id(headers.get(TRACEPARENT))
    return dict(fields) if found is None else {**fields, "trace_id": found}


_STANDARD = frozenset([*vars(logging.makeLogRecord({})), "message", "asctime"])


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra=` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per probe request would drown the events that matter.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.Formatter.converter = time.gmtime
