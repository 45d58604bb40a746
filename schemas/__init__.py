"""Versioned schemas of errorstream's topics, with valid and invalid example payloads.

- ``event.v1.json``: an error event on the ingest topic (Sentry field names + ``service``).
- ``alert.v1.json``: an alert on the alerts topic.
- ``examples/<schema>/{valid,invalid}/``: payloads that drive the tests (``sentry/``: Sentry
  event payloads, accepted on the ingest topic as they are: docs/ingest-formats.md);
  ``invalid/expectations.json`` says which reason and field each invalid one must report.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = SCHEMA_DIR / "examples"
EVENT_SCHEMA_VERSION = 1
ALERT_SCHEMA_VERSION = 1


@cache
def load_schema(name: str, version: int = 1) -> dict[str, Any]:
    """The JSON Schema document ``<name>.v<version>.json`` (name: ``event`` or ``alert``)."""
    path = SCHEMA_DIR / f"{name}.v{version}.json"
    if not path.is_file():
        raise ValueError(f"no schema {name!r} version {version} (looked for {path})")
    return json.loads(path.read_text(encoding="utf-8"))


def example_paths(name: str, kind: str) -> list[Path]:
    """Example payload files for schema ``name``; ``kind`` is ``valid`` or ``invalid``."""
    folder = EXAMPLES_DIR / name / kind
    return sorted(p for p in folder.glob("*.json") if p.name != "expectations.json")


def invalid_expectations(name: str) -> dict[str, dict[str, str]]:
    data = json.loads((EXAMPLES_DIR / name / "invalid" / "expectations.json").read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}
