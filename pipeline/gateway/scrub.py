"""Server-side scrubbing of v1 events with the producer SDK's rules
(``errorstream_sdk.scrub``): secrets in messages, exception values, frame source and
variables, breadcrumbs, request, tags, extra, contexts and user data are filtered before an
event is published, whatever the client did (a Sentry SDK scrubs much less by default)."""

from __future__ import annotations

from typing import Any

from errorstream_sdk.scrub import Scrubber


def scrub_event(event: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """Scrub ``event`` (schema v1, as made by ``pipeline.sentry``) in place."""
    s = scrubber.scrub_string
    message = event.get("message")
    if isinstance(message, str):
        event["message"] = s(message)
    elif isinstance(message, dict):
        for key in ("message", "formatted"):
            if isinstance(message.get(key), str):
                message[key] = s(message[key])
        if isinstance(message.get("params"), list):
            message["params"] = scrubber.scrub(message["params"])
    for exc in (event.get("exception") or {}).get("values", ()):
        if isinstance(exc.get("value"), str):
            exc["value"] = s(exc["value"])
        for f in (exc.get("stacktrace") or {}).get("frames", ()):
            if f.get("context_line"):
                f["context_line"] = s(f["context_line"])
            for key in ("pre_context", "post_context"):
                if key in f:
                    f[key] = [s(x) for x in f[key]]
            if "vars" in f:
                f["vars"] = scrubber.scrub(f["vars"])
    for crumb in (event.get("breadcrumbs") or {}).get("values", ()):
        if isinstance(crumb.get("message"), str):
            crumb["message"] = s(crumb["message"])
        if crumb.get("data"):
            crumb["data"] = scrubber.scrub(crumb["data"])
    for key in ("request", "tags", "extra", "contexts"):
        if event.get(key):
            event[key] = scrubber.scrub(event[key])
    user = event.get("user")
    if user:  # identity fields stay (they are what `users` counts); free-form data does not
        for key in ("data", "geo"):
            if key in user:
                user[key] = scrubber.scrub(user[key])
    return event
