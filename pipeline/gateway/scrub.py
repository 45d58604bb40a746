"""Server-side scrubbing of v1 events with the producer SDK's rules
(``errorstream_sdk.scrub``): secrets in messages, exception values, frame source and
variables, breadcrumbs, request, tags, extra, contexts and user data are filtered before an
event is published, whatever the client did (a Sentry SDK scrubs much less by default).

Same rules, fewer microseconds (tests/unit/gateway/test_scrub.py proves the output equal to
the SDK's rules on a corpus of events with nested secrets and on generated strings):

* the SDK's exact precheck (``may_hold_secret``) lets most strings skip the value rules;
  frame source lines, which a code base repeats, are also remembered (``GatewayScrubber``);
* strings that sit together (a mapping of strings such as frame vars or headers, the
  breadcrumb messages) take one precheck over all of them joined, not one each;
* ``scrub_event`` walks each free-form part (frame vars, request body and headers,
  contexts, extra, breadcrumb data, user data) once, checking the depth / field-size limits
  and scrubbing in the same pass;
* a bounded field that a filter made longer (``a@b.io`` -> ``***@b.io``) is cut back to the
  bound the conversion gave it, so a scrubbed converted event still fits schema v1.
"""

from __future__ import annotations

from typing import Any

from errorstream_sdk.scrub import FILTERED, Scrubber, may_hold_secret

from pipeline.gateway.limits import LimitExceeded, check_json

SOURCE_CACHE_SIZE = 65536
SOURCE_CACHE_CHARS = 1024

# the bounds pipeline.sentry gives the strings scrubbed here (schema v1's where it has one)
MESSAGE_CHARS = 65536
SOURCE_LINE_CHARS = 4096
CRUMB_MESSAGE_CHARS = 8192
TAG_VALUE_CHARS = 200
REQUEST_CHARS = {"method": 16, "url": 8192, "fragment": 1024}
# request keys passed through as the client sent them (limits apply), as in ingest.free_form
REQUEST_FREE_FORM = frozenset({"data", "headers", "env", "cookies", "query_string"})


class GatewayScrubber(Scrubber):
    """The SDK's scrubber with a second, larger memo for frame source lines: a code base has a bounded set of them, repeated by
    every event of the same bugs, while the SDK's own memo (8,192 strings) is flushed by
    one-off values such as ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: dict[str, str] = {}

    def scrub_source_line(self, line: str) -> str:
        """The scrubbed line, at most ``SOURCE_LINE_CHARS`` long (remembered)."""
        cache = self._source
        out = cache.get(line)
        if out is None:
            out = _cut(self._scrub_string(line), SOURCE_LINE_CHARS)
            if len(line) <= SOURCE_CACHE_CHARS:
                if len(cache) >= SOURCE_CACHE_SIZE:
                    cache.clear()
                cache[line] = out
        return out


# Joins strings for one precheck of them all: no value rule matches across it (it is not a
# word, digit, space, quote or separator character), so if ``may_hold_secret`` finds
# nothing in the joined text, no rule can change any of the strings
# (test_scrub.py::test_one_precheck_over_joined_strings_implies_each).
JOIN = "\x00"


def none_may_hold_secret(strings: list[str], scrubber: Scrubber) -> bool:
    """True if no built-in rule can change any of ``strings`` and there are no user
    patterns: one precheck instead of one per string."""
    return not scrubber._extra_patterns and not may_hold_secret(JOIN.join(strings))


def _plain_leaf(value: dict, scrubber: Scrubber, max_chars: int) -> bool:
    """A mapping of strings only, no secret key, all within ``max_chars``, none a rule can
    change: what scrubbing returns unchanged (the common case: frame vars, headers)."""
    sensitive = scrubber.key_is_sensitive
    for k, v in value.items():
        if v.__class__ is not str or k.__class__ is not str:
            return False
        if len(v) > max_chars or len(k) > max_chars or (v and sensitive(k)):
            return False
    return none_may_hold_secret(list(value.values()), scrubber)


def _too_long(what: str, max_chars: int) -> LimitExceeded:
    return LimitExceeded(413, "field_too_large", f"a {what} is over {max_chars} characters")


def _too_deep(max_depth: int) -> LimitExceeded:
    return LimitExceeded(400, "json_too_deep", f"JSON nests deeper than {max_depth}")


def scrub_within(
    value: Any, scrubber: Scrubber, max_depth: int, max_chars: int, depth: int = 1
) -> Any:
    """``scrubber.scrub(value)`` and ``limits.check_json(value, max_depth, max_chars)`` in one
    walk: the scrubbed copy, or ``LimitExceeded``. A value under a secret key is replaced,
    but its limits are checked all the same (the same requests are refused as before)."""
    cls = value.__class__
    if cls is str:
        if len(value) > max_chars:
            raise _too_long("string", max_chars)
        return scrubber.scrub_string(value)
    if cls is dict:
        if depth > max_depth:
            raise _too_deep(max_depth)
        if _plain_leaf(value, scrubber, max_chars):
            return dict(value)
        s, sensitive, out = scrubber.scrub_string, scrubber.key_is_sensitive, {}
        for k, v in value.items():
            if k.__class__ is not str:
                k = str(k)
            if len(k) > max_chars:
                raise _too_long("key", max_chars)
            vc = v.__class__
            if v is not None and v != "" and sensitive(k):
                check_json(v, max_depth - depth, max_chars)
                out[k] = FILTERED
            elif vc is str:
                if len(v) > max_chars:
                    raise _too_long("string", max_chars)
                out[k] = s(v)
            elif vc is dict or vc is list:
                out[k] = scrub_within(v, scrubber, max_depth, max_chars, depth + 1)
            else:
                out[k] = scrubber.scrub(v) if isinstance(v, str | dict | list | tuple) else v
        return out
    if cls is list:
        if depth > max_depth:
            raise _too_deep(max_depth)
        return [scrub_within(v, scrubber, max_depth, max_chars, depth + 1) for v in value]
    if isinstance(value, str | dict | list | tuple):  # subclasses: the two steps apart
        check_json(value, max_depth - depth + 1, max_chars)
        return scrubber.scrub(value)
    return value


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def scrub_event(
    event: dict[str, Any],
    scrubber: Scrubber,
    max_depth: int | None = None,
    max_chars: int | None = None,
) -> dict[str, Any]:
    """Scrub ``event`` (schema v1, as made by ``pipeline.sentry``) in place. With
    ``max_depth`` and ``max_chars``, the free-form parts (``ingest.free_form``) are also
    checked against those limits in the same walk (``LimitExceeded``)."""
    s = scrubber.scrub_string
    if isinstance(scrubber, GatewayScrubber):
        line, known = scrubber.scrub_source_line, scrubber._source.get
    else:

        def line(text: str) -> str:
            return _cut(s(text), SOURCE_LINE_CHARS)

        known = {}.get
    if max_depth is None or max_chars is None:
        free = scrubber.scrub
    else:

        def free(value: Any) -> Any:
            return scrub_within(value, scrubber, max_depth, max_chars)

    message = event.get("message")
    if isinstance(message, str):
        event["message"] = _cut(s(message), MESSAGE_CHARS)
    elif isinstance(message, dict):
        for key in ("message", "formatted"):
            if isinstance(message.get(key), str):
                message[key] = _cut(s(message[key]), MESSAGE_CHARS)
        if isinstance(message.get("params"), list):
            message["params"] = free(message["params"])
    for exc in (event.get("exception") or {}).get("values", ()):
        if isinstance(exc.get("value"), str):
            exc["value"] = _cut(s(exc["value"]), MESSAGE_CHARS)
        for f in (exc.get("stacktrace") or {}).get("frames", ()):
            if f.get("context_line"):
                f["context_line"] = line(f["context_line"])
            if "pre_context" in f:  # most lines are known: a lookup, no call
                f["pre_context"] = [known(x) or line(x) for x in f["pre_context"]]
            if "post_context" in f:
                f["post_context"] = [known(x) or line(x) for x in f["post_context"]]
            if "vars" in f:
                f["vars"] = free(f["vars"])
    crumbs = (event.get("breadcrumbs") or {}).get("values", ())
    messages = [c["message"] for c in crumbs if c.get("message").__class__ is str]
    scrub_messages = bool(messages) and not none_may_hold_secret(messages, scrubber)
    for crumb in crumbs:
        if scrub_messages and isinstance(crumb.get("message"), str):
            crumb["message"] = _cut(s(crumb["message"]), CRUMB_MESSAGE_CHARS)
        if crumb.get("data"):
            crumb["data"] = free(crumb["data"])
    request = event.get("request")
    if request:
        event["request"] = _scrub_request(request, scrubber, free)
    tags = event.get("tags")
    if tags:
        event["tags"] = {k: _cut(v, TAG_VALUE_CHARS) for k, v in scrubber.scrub(tags).items()}
    for key in ("extra", "contexts"):
        if event.get(key):
            event[key] = free(event[key])
    user = event.get("user")
    if user:  # identity fields stay (they are what `users` counts); free-form data does not
        for key in ("data", "geo"):
            if key in user:
                user[key] = free(user[key])
    sdk = event.get("sdk")
    if sdk and "packages" in sdk and max_depth is not None and max_chars is not None:
        check_json(sdk["packages"], max_depth, max_chars)  # not scrubbed, limits apply
    return event


def _scrub_request(request: Any, scrubber: Scrubber, free: Any) -> Any:
    """``scrubber.scrub(request)``, with the parts passed through as sent going through
    ``free`` (limits) and the bounded strings cut back to their bound."""
    if request.__class__ is not dict:
        return scrubber.scrub(request)
    sensitive, out = scrubber.key_is_sensitive, {}
    for k, v in request.items():
        if v is not None and v != "" and sensitive(k):
            if k in REQUEST_FREE_FORM and free is not scrubber.scrub:
                free(v)  # refused if over the limits, filtered as a whole otherwise
            out[k] = FILTERED
        elif k in REQUEST_FREE_FORM:
            out[k] = free(v)
        else:
            v = scrubber.scrub(v)
            limit = REQUEST_CHARS.get(k)
            out[k] = _cut(v, limit) if limit is not None and v.__class__ is str else v
    return out
