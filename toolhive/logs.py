"""Logging for both processes: one root handler writing JSON lines or text, with trace ids when in a span.

The CLI calls `configure_logging(level=..., log_format=...)` from the observability settings before
anything logs. Records logged inside a recording span carry `trace_id`/`span_id`, so a log line leads to
its trace. Never configures tracing and never reads the environment.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any, Final, TextIO

from opentelemetry import trace

from toolhive import settings

# Attributes every LogRecord has; anything else on a record came from `extra=` and is printed as a field.
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
# kopf's per-object logger adds these; `k8s_ref` becomes `object`, the rest is internal plumbing.
_KOPF_INTERNAL: Final = frozenset({"settings", "k8s_skip", "k8s_ref"})
_HANDLER_MARK: Final = "_toolhive_handler"


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (lower-case hex) to records logged inside a recording span."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = trace.get_current_span()
        if current.is_recording():
            context = current.get_span_context()
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = " ".join(f"{key}={_text_value(value)}" for key, value in _extra_fields(record).items())
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def build_handler(
    *, log_format: settings.LogFormat | str, stream: TextIO | None = None
) -> logging.StreamHandler[TextIO]:
    """A stream handler (stderr by default) with the chosen formatter and the trace-context filter.

    Raises ValueError naming `log_format` for an unknown format.
    """
    try:
        chosen = settings.LogFormat(log_format)
    except ValueError:
        raise ValueError(f"log_format: expected json or text, got {log_format!r}") from None
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if chosen is settings.LogFormat.JSON else TextFormatter())
    handler.addFilter(TraceContextFilter())
    return handler


def configure_logging(
    *, level: str, log_format: settings.LogFormat | str, stream: TextIO | None = None
) -> logging.Handler:
    """Install our handler on the root logger at `level`, replacing one a previous call installed.

    Handlers installed by others are left alone. Returns the handler. Raises ValueError for an unknown
    level or format, naming the field.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log_level: expected DEBUG, INFO, WARNING or ERROR, got {level!r}")
    handler = build_handler(log_format=log_format, stream=stream)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and key not in _KOPF_INTERNAL and not key.startswith("_")
    }
    reference = record.__dict__.get("k8s_ref")
    if isinstance(reference, dict):
        fields["object"] = {key: value for key, value in reference.items() if value is not None}
    return fields


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text
