"""Python types for the v1 payloads (the JSON Schema files are the contract)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Level = Literal["fatal", "critical", "error", "warning", "info", "debug"]
AlertKind = Literal[
    "new_issue",
    "regression",
    "threshold",
    "critical",
    "spike",
    "error_rate",
    "incident",
    "escalating",
]


class Frame(TypedDict, total=False):
    filename: str | None
    abs_path: str | None
    module: str | None
    function: str | None
    lineno: int | None
    colno: int | None
    in_app: bool | None
    context_line: str | None
    pre_context: list[str]
    post_context: list[str]
    vars: dict[str, Any]


class Mechanism(TypedDict, total=False):
    type: str
    handled: bool


class Stacktrace(TypedDict):
    frames: list[Frame]


class ExceptionValue(TypedDict, total=False):
    type: str
    value: str
    module: str | None
    mechanism: Mechanism
    stacktrace: Stacktrace


class ExceptionInterface(TypedDict):
    values: list[ExceptionValue]


class Event(TypedDict):
    """An error event as published to the ingest topic (schema ``event.v1.json``)."""

    event_id: str
    timestamp: str | float
    service: str
    level: NotRequired[Level]
    platform: NotRequired[str]
    logger: NotRequired[str]
    message: NotRequired[str | dict[str, Any]]
    exception: NotRequired[ExceptionInterface]
    fingerprint: NotRequired[list[str]]
    tags: NotRequired[dict[str, str]]
    user: NotRequired[dict[str, Any]]
    request: NotRequired[dict[str, Any]]
    contexts: NotRequired[dict[str, Any]]
    breadcrumbs: NotRequired[dict[str, Any]]
    release: NotRequired[str]
    environment: NotRequired[str]
    sdk: NotRequired[dict[str, str]]


class Alert(TypedDict):
    """An alert on the alerts topic (schema ``alert.v1.json``)."""

    schema_version: int
    alert_id: str
    kind: AlertKind
    created_at: str
    service: str
    fingerprint: str
    title: str
    numbers: dict[str, float | str | None]
    event_time: NotRequired[str]
    environment: NotRequired[str]
    release: NotRequired[str]
    culprit: NotRequired[str]
    category: NotRequired[str]
    level: NotRequired[str]
    event_id: NotRequired[str]
    rule: NotRequired[str]
    fingerprints: NotRequired[list[str]]
