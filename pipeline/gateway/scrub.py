"""Server-side scrubbing of v1 events with the producer SDK's rules
(``errorstream_sdk.scrub``): secrets in messages, exception values, frame source and
variables, breadcrumbs, request, tags, extra, contexts and user data are filtered before an
event is published, whatever the client did (a Sentry SDK scrubs much less by default)."""

from __future__ import annotations

from typing import Any

from errorstream_sdk.scrub import Scrubber

SOURCE_CACHE_SIZE = 65536
SOURCE_CACHE_CHARS = 1024


class GatewayScrubber(Scrubber):
    """The SDK's scrubber with a second, larger memo for frame source lines: a code base
    has a bounded set of them, repeated by every event of the same bugs, while the SDK's
    own memo (8,192 strings) is flushed by one-off values such as ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: dict[str, str] = {}

    def scrub_source_line(self, line: str) -> str:
        cache = self._source
        out = cache.get(line)
        if out is None:
            out = self._scrub_string(line)
            if len(line) <= SOURCE_CACHE_CHARS:
                if len(cache) >= SOURCE_CACHE_SIZE:
                    cache.clear()
                cache[line] = out
        return out


def scrub_event(event: dict[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """Scrub ``event`` (schema v1, as made by ``pipeline.sentry``) in place."""
    s = scrubber.scrub_string
    line = getattr(scrubber, "scrub_source_line", s)
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
                f["context_line"] = line(f["context_line"])
            for key in ("pre_context", "post_context"):
                if key in f:
                    f[key] = [line(x) for x in f[key]]
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
