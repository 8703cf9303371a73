"""Log lines: JSON and text formats, extra fields, and trace ids from the current span."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider, sampling

from toolhive import logs, settings, telemetry


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards: configure_logging changes process-wide state."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def make_logger(log_format: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{log_format}")
    logger.handlers[:] = [logs.build_handler(log_format=log_format, stream=stream)]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_time_level_logger_message_and_extra_fields() -> None:
    logger, stream = make_logger("json")
    logger.info("granted %s", "team-a", extra={"k8s.namespace.name": "team-a", "writes": 2})
    [line] = json_lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "test.logs.json"
    assert line["message"] == "granted team-a"
    assert line["k8s.namespace.name"] == "team-a"
    assert line["writes"] == 2
    assert line["time"].endswith("Z")
    assert len(line["time"]) == len("2026-11-24T00:51:47.123Z")
    assert "trace_id" not in line


def test_json_lines_stay_one_line_with_newlines_and_exceptions() -> None:
    logger, stream = make_logger("json")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("first\nsecond")
    [line] = json_lines(stream)
    assert line["message"] == "first\nsecond"
    assert line["exception"].startswith("Traceback")
    assert "ValueError: bad" in line["exception"]


def test_extra_fields_never_replace_the_standard_ones_and_odd_values_become_strings() -> None:
    logger, stream = make_logger("json")
    logger.warning("m", extra={"level": "spoofed", "when": object()})
    [line] = json_lines(stream)
    assert line["level"] == "WARNING"
    assert line["when"].startswith("<object object")


def test_kopf_object_reference_becomes_an_object_field_and_its_plumbing_is_dropped() -> None:
    logger, stream = make_logger("json")
    reference = {"kind": "MCPServer", "name": "github", "namespace": "team-a", "uid": None}
    logger.info("handled", extra={"k8s_ref": reference, "k8s_skip": False, "settings": object()})
    [line] = json_lines(stream)
    assert line["object"] == {"kind": "MCPServer", "name": "github", "namespace": "team-a"}
    assert not {"k8s_ref", "k8s_skip", "settings"} & set(line)


def test_records_inside_a_recording_span_carry_its_ids() -> None:
    logger, stream = make_logger("json")
    tracer = telemetry.tracer(TracerProvider())
    with telemetry.span("toolhive.reconcile", tracer=tracer) as current:
        logger.info("inside")
    logger.info("outside")
    inside, outside = json_lines(stream)
    context = current.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside


def test_records_inside_an_unsampled_span_carry_no_ids() -> None:
    logger, stream = make_logger("json")
    with telemetry.span("dropped", tracer=telemetry.tracer(TracerProvider(sampler=sampling.ALWAYS_OFF))):
        assert trace.get_current_span().get_span_context().is_valid
        logger.info("inside")
    [line] = json_lines(stream)
    assert "trace_id" not in line


def test_text_line_reads_time_level_logger_message_then_fields() -> None:
    logger, stream = make_logger("text")
    with telemetry.span("s", tracer=telemetry.tracer(TracerProvider())):
        logger.info("granted", extra={"k8s.namespace.name": "team-a", "reason": "selector matched"})
    line = stream.getvalue().rstrip("\n")
    timestamp, rest = line.split(" ", 1)
    assert timestamp.endswith("Z")
    assert rest.startswith(
        'INFO    test.logs.text: granted k8s.namespace.name=team-a reason="selector matched"'
    )
    assert " trace_id=" in rest
    assert " span_id=" in rest


def test_configure_logging_replaces_its_own_handler_and_keeps_others(root_logger: logging.Logger) -> None:
    foreign = logging.NullHandler()
    root_logger.addHandler(foreign)
    first = io.StringIO()
    second = io.StringIO()
    logs.configure_logging(level="DEBUG", log_format=settings.LogFormat.JSON, stream=first)
    logs.configure_logging(level="warning", log_format="text", stream=second)
    logging.getLogger("test.logs.configure").warning("only once")
    logging.getLogger("test.logs.configure").info("below the level")
    assert first.getvalue() == ""
    assert second.getvalue().count("only once") == 1
    assert "below the level" not in second.getvalue()
    assert foreign in root_logger.handlers
    assert root_logger.level == logging.WARNING


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"level": "LOUD", "log_format": "json"}, "log_level", id="unknown level"),
        pytest.param({"level": "INFO", "log_format": "yaml"}, "log_format", id="unknown format"),
    ],
)
def test_bad_settings_fail_naming_the_field(
    root_logger: logging.Logger, arguments: dict[str, str], field: str
) -> None:
    handlers = list(root_logger.handlers)
    with pytest.raises(ValueError, match=f"^{field}: "):
        logs.configure_logging(**arguments)
    assert root_logger.handlers == handlers
