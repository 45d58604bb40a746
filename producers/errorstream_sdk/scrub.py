"""Scrubbing: every string and mapping that can carry a secret is filtered before an
event is serialized, so secrets never leave the process.

Two kinds of rules:
* key rules - a mapping value whose key names a secret (``password``, ``Authorization``,
  ``set-cookie``, ``api_key``...) is replaced as a whole;
* value rules - patterns found inside any string: private keys, ``user:pass@`` in URLs,
  bearer/basic tokens, JWTs, AWS access key ids, ``name=value`` pairs and query parameters
  with a sensitive name, e-mail addresses (masked to ``***@domain``) and Luhn-valid card
  numbers. User rules add key names (substring, case-insensitive) and regexes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

FILTERED = "[Filtered]"

_KEY_RE = re.compile(
    r"pass(?:word|wd|phrase)|^pass$|^pwd$|secret|token|api_?key|access_?key|private_?key"
    r"|authori[sz]ation|^auth$|_auth$|^auth_|cookie|session|csrf|xsrf|credential"
    r"|signature|^sig$|card_?number|^cvv$|^cvc$|^ssn$|^dsn$"
)

_SECRET_NAMES = (
    r"(?:pass(?:word|wd|phrase)|secret|token|api_?key|apikey|access_?key|private_?key"
    r"|credential|session(?:_?id)?|cookie|signature)[\w-]*|(?:authorization|auth|pwd|sig|dsn)\b"
)

_VALUE_RE = re.compile(
    r"(?P<pk>-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z))"
    r"|(?P<ui>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@"
    r"|(?P<kvk>" + _SECRET_NAMES + r")(?P<kvs>[\"']?\s*[=:]\s*)"
    r"(?P<kvv>(?:(?:bearer|basic|token|digest)\s+)?(?:\"[^\"]*\"|'[^']*'|[^\s&;,#\"']+))"
    r"|(?P<bt>\b(?:bearer|basic|token))\s+[A-Za-z0-9\-._~+/]{8,}=*"
    r"|(?P<jwt>\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"
    r"|(?P<aws>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b)"
    r"|(?P<gh>\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}))"
    r"|\b[A-Za-z0-9._%+-]+@(?P<dom>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b"
    r"|(?P<cc>\b\d(?:[ -]?\d){12,18}\b)",
    re.IGNORECASE,
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _replace(m: re.Match[str]) -> str:
    g = m.lastgroup
    if g == "pk":
        return "[Filtered private key]"
    if g == "ui" or (g is None and m.group("ui")):
        return m.group("ui") + FILTERED + "@"
    if g in ("kvk", "kvs", "kvv") or m.group("kvk"):
        return m.group("kvk") + m.group("kvs") + FILTERED
    if g == "bt" or m.group("bt"):
        return m.group("bt") + " " + FILTERED
    if g == "jwt" or g == "aws" or g == "gh":
        return FILTERED
    if m.group("dom"):
        return "***@" + m.group("dom")
    if m.group("cc"):
        digits = re.sub(r"[ -]", "", m.group("cc"))
        return "[Filtered card]" if luhn_valid(digits) else m.group(0)
    return m.group(0)


class Scrubber:
    def __init__(self, extra_keys: tuple[str, ...] = (), extra_patterns: tuple[str, ...] = ()) -> None:
        self._extra_keys = tuple(k.lower().replace("-", "_") for k in extra_keys)
        self._extra_patterns = tuple(re.compile(p) for p in extra_patterns)
        self.key_is_sensitive = lru_cache(maxsize=4096)(self._key_is_sensitive)
        self.scrub_string = lru_cache(maxsize=8192)(self._scrub_string)

    def _key_is_sensitive(self, key: str) -> bool:
        norm = key.lower().replace("-", "_").replace(" ", "_")
        if _KEY_RE.search(norm):
            return True
        return any(k in norm for k in self._extra_keys)

    def _scrub_string(self, s: str) -> str:
        out = _VALUE_RE.sub(_replace, s)
        for pattern in self._extra_patterns:
            out = pattern.sub(FILTERED, out)
        return out

    def scrub(self, obj: Any) -> Any:
        """A scrubbed copy of strings, mappings and sequences (other values unchanged)."""
        if isinstance(obj, str):
            return self.scrub_string(obj)
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                ks = k if isinstance(k, str) else str(k)
                if v is not None and v != "" and self.key_is_sensitive(ks):
                    out[ks] = FILTERED
                else:
                    out[ks] = self.scrub(v)
            return out
        if isinstance(obj, list | tuple):
            return [self.scrub(v) for v in obj]
        return obj

    def scrub_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Scrub, in place, the parts of an event that can carry secrets."""
        s = self.scrub_string
        if isinstance(event.get("message"), str):
            event["message"] = s(event["message"])
        for exc in (event.get("exception") or {}).get("values", ()):
            if isinstance(exc.get("value"), str):
                exc["value"] = s(exc["value"])
            for f in exc["stacktrace"]["frames"]:
                if f.get("context_line"):
                    f["context_line"] = s(f["context_line"])
                if "pre_context" in f:
                    f["pre_context"] = [s(x) for x in f["pre_context"]]
                    f["post_context"] = [s(x) for x in f["post_context"]]
                if "vars" in f:
                    f["vars"] = self.scrub(f["vars"])
        crumbs = event.get("breadcrumbs")
        if crumbs:
            for c in crumbs["values"]:
                if isinstance(c.get("message"), str):
                    c["message"] = s(c["message"])
                if c.get("data"):
                    c["data"] = self.scrub(c["data"])
        for key in ("request", "tags", "contexts", "extra"):
            if event.get(key):
                event[key] = self.scrub(event[key])
        return event
