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
from collections.abc import Callable
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
# words that must appear (lower-cased) for the key=value rule to be worth running
_KV_WORDS = (
    "pass",
    "secret",
    "token",
    "key",
    "credential",
    "session",
    "cookie",
    "signature",
    "auth",
    "pwd",
    "sig",
    "dsn",
)
_KV_GATE = re.compile("|".join(_KV_WORDS))
_DIGITS = str.maketrans("", "", "0123456789")


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


def _card(m: re.Match[str]) -> str:
    digits = m.group(0).replace(" ", "").replace("-", "")
    return "[Filtered card]" if luhn_valid(digits) else m.group(0)


# (gate, pattern, replacement): each rule runs only when its cheap gate passes (Python's
# regex engine is slow to scan long strings for many alternatives, and almost no string
# holds a secret), in this order over the previous rule's output.
Gate = Callable[[str, str], bool]
RULES: tuple[tuple[Gate, re.Pattern[str], Any], ...] = (
    (
        lambda s, low: "PRIVATE KEY" in s,
        re.compile(
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)"
        ),
        "[Filtered private key]",
    ),
    (
        lambda s, low: "://" in s and "@" in s,
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]*@"),
        r"\1" + FILTERED + "@",
    ),
    (
        lambda s, low: _KV_GATE.search(low) is not None,
        re.compile(
            r"(" + _SECRET_NAMES + r")([\"']?\s*[=:]\s*)"
            r"(?:(?:bearer|basic|token|digest)\s+)?(?:\"[^\"]*\"|'[^']*'|[^\s&;,#\"']+)",
            re.IGNORECASE,
        ),
        r"\1\2" + FILTERED,
    ),
    (
        lambda s, low: "bearer" in low or "basic" in low or "token" in low,
        re.compile(r"\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE),
        r"\1 " + FILTERED,
    ),
    (
        lambda s, low: "eyJ" in s,
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
        FILTERED,
    ),
    (
        lambda s, low: "A" in s,
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
        FILTERED,
    ),
    (
        lambda s, low: "gh" in s or "xox" in s or "sk_live_" in s,
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,})"
        ),
        FILTERED,
    ),
    (
        lambda s, low: "@" in s,
        re.compile(r"\b[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b"),
        r"***@\1",
    ),
    (
        lambda s, low: len(s) - len(s.translate(_DIGITS)) >= 13,
        re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
        _card,
    ),
)


# -- the common path: a cheap, exact test that no rule above can change a string ----------
# Each check below is implied by its rule's *pattern* matching (not only by its gate), so
# ``may_hold_secret(s) is False`` guarantees every rule leaves ``s`` as it is. Non-ASCII text
# always takes the full rules (``str.lower`` and case-insensitive matching differ there).
_AWS_PREFIX = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)")
_DIGIT_BYTES = b"0123456789"
_DIGITS_TO_ZERO = bytes.maketrans(_DIGIT_BYTES, b"0" * 10)
_CARD_RUN = b"0" * 13
_RUN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"  # [\w-], ASCII
_MAX_SEPARATORS = 32
_WINDOW = 64


def _kv_candidate(low: str) -> bool:
    """Could the ``name=value`` rule match? Its name sits in the ``[\\w-]+`` run right before
    an optional quote, optional whitespace and ``=`` or ``:``; look only there (within
    ``_WINDOW`` characters; a run or gap reaching further back counts as a candidate)."""
    seen = 0
    for sep in "=:":
        i = low.find(sep)
        while i != -1:
            seen += 1
            if seen > _MAX_SEPARATORS:
                return True  # not worth it: let the rule's own regex decide
            start = i - _WINDOW if i > _WINDOW else 0
            t = low[start:i].rstrip()
            if t[-1:] in ("'", '"'):
                t = t[:-1]
            head = t.rstrip(_RUN_CHARS)
            if start and not head:
                return True
            if len(head) < len(t) and _KV_GATE.search(t, len(head)) is not None:
                return True
            i = low.find(sep, i + 1)
    return False


def may_hold_secret(s: str) -> bool:
    """False only if no built-in value rule can change ``s`` (see above)."""
    if not s.isascii():
        return True
    if "@" in s:  # user:pass@ in URLs, e-mail addresses
        return True
    if "-" in s and ("PRIVATE KEY" in s or "xox" in s):  # -----BEGIN ..., xox?- (Slack)
        return True
    if "_" in s and ("gh" in s or "sk_live_" in s):  # gh?_ (GitHub), sk_live_ (Stripe)
        return True
    if "." in s and "eyJ" in s:  # JWT: three dot-separated parts
        return True
    if "A" in s and _AWS_PREFIX.search(s) is not None:  # AWS access key ids
        return True
    low = s.lower()
    if ("b" in low and ("bearer" in low or "basic" in low)) or ("k" in low and "token" in low):
        return True
    if ("=" in s or ":" in s) and _kv_candidate(low):
        return True
    raw = s.encode()
    if len(raw) - len(raw.translate(None, _DIGIT_BYTES)) < 13:
        return False
    # card numbers: 13 digits with only spaces or dashes between them (ids mixing digits
    # and letters, such as UUIDs, have many digits but no such run)
    return _CARD_RUN in raw.translate(_DIGITS_TO_ZERO, b" -")


_CACHED_LEN = 256  # short strings repeat (headers, tags, crumbs): remember their result
_CACHE_SIZE = 8192


class Scrubber:
    def __init__(
        self, extra_keys: tuple[str, ...] = (), extra_patterns: tuple[str, ...] = ()
    ) -> None:
        self._extra_keys = tuple(k.lower().replace("-", "_") for k in extra_keys)
        self._extra_patterns = tuple(re.compile(p) for p in extra_patterns)
        self.key_is_sensitive = lru_cache(maxsize=4096)(self._key_is_sensitive)
        self._cache: dict[str, str] = {}

    def _key_is_sensitive(self, key: str) -> bool:
        norm = key.lower().replace("-", "_").replace(" ", "_")
        if _KEY_RE.search(norm):
            return True
        return any(k in norm for k in self._extra_keys)

    def scrub_string(self, s: str) -> str:
        if len(s) > _CACHED_LEN:
            return self._scrub_string(s)
        cache = self._cache
        out = cache.get(s)
        if out is None:
            out = self._scrub_string(s)
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[s] = out
        return out

    def _scrub_string(self, s: str) -> str:
        out = s
        if may_hold_secret(s):
            low = s.lower()
            for gate, pattern, replacement in RULES:
                if gate(out, low):
                    out = pattern.sub(replacement, out)
                    low = out.lower()
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

    def scrub_event(
        self,
        event: dict[str, Any],
        trusted_contexts: dict[str, Any] | None = None,
        source_scrubbed: bool = False,
    ) -> dict[str, Any]:
        """Scrub, in place, the parts of an event that can carry secrets. Context values
        that are the very objects in ``trusted_contexts`` (the SDK's own runtime/os/host)
        are left as they are; ``source_scrubbed``: frame source context already went
        through ``scrub_string`` (``EventBuilder(scrub_line=...)``)."""
        s = self.scrub_string
        get = event.get
        message = get("message")
        if isinstance(message, str):
            event["message"] = s(message)
        exception = get("exception")
        if exception:
            for exc in exception.get("values", ()):
                if isinstance(exc.get("value"), str):
                    exc["value"] = s(exc["value"])
                for f in exc["stacktrace"]["frames"]:
                    if not source_scrubbed:
                        if f.get("context_line"):
                            f["context_line"] = s(f["context_line"])
                        if "pre_context" in f:
                            f["pre_context"] = [s(x) for x in f["pre_context"]]
                            f["post_context"] = [s(x) for x in f["post_context"]]
                    if "vars" in f:
                        f["vars"] = self.scrub(f["vars"])
        crumbs = get("breadcrumbs")
        if crumbs:
            for c in crumbs["values"]:
                if isinstance(c.get("message"), str):
                    c["message"] = s(c["message"])
                if c.get("data"):
                    c["data"] = self.scrub(c["data"])
        for key in ("request", "tags", "extra"):
            value = get(key)
            if value:
                event[key] = self.scrub(value)
        contexts = get("contexts")
        if contexts and contexts is not trusted_contexts:
            trusted = trusted_contexts or {}
            event["contexts"] = {
                k: v if trusted.get(k) is v else self.scrub(v) for k, v in contexts.items()
            }
        return event
