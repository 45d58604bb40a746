"""The built-in parameterization patterns, in the order they are tried.

Each entry is ``(name, regex)``. The placeholder for a match is ``<name>``, except for the
``status`` pattern whose matches are *kept verbatim* (HTTP status codes carry meaning).
All patterns are combined into one alternation in ``parameterize.py``; at each position the
first alternative that matches wins, so order matters: specific shapes (emails, URLs, UUIDs,
digests, dates) come before the generic ones (hex, float, int).

Every regex here uses only non-capturing groups so the combined pattern can tell which
alternative matched through ``Match.lastgroup``.
"""

from __future__ import annotations

# Keywords after which a 3-digit number 100-599 is an HTTP status and is kept.
_STRONG_STATUS_WORDS = (
    r"status(?:[ _-]?code)?|http(?:/\d(?:\.\d)?)?(?:[ _-]?(?:status|error|code))?"
    r"|response[ _-]?code|return[ _-]?code|status[ _-]?line"
)
# Weaker keywords: kept only when the number is not followed by a lowercase word
# ("returned 500" / "returned 503: upstream" keep, "returned 250 rows" does not).
_WEAK_STATUS_WORDS = r"returned|responded(?: with)?|response|failed with|got|server error|error"
_REASON_PHRASES = (
    r"OK|Created|Accepted|No Content|Moved Permanently|Found|Not Modified|Bad Request"
    r"|Unauthori[sz]ed|Payment Required|Forbidden|Not Found|Method Not Allowed|Not Acceptable"
    r"|Request Time-?out|Conflict|Gone|Payload Too Large|Unsupported Media Type"
    r"|Unprocessable (?:Entity|Content)|Too Many Requests|Internal Server Error"
    r"|Not Implemented|Bad Gateway|Service Unavailable|Gateway Time-?out"
)
# (The look-ahead - the first two letters of a keyword, or a digit - is implied by the rest
# and saves trying the case-insensitive keyword list at most words.)
_STATUS = (
    r"(?=[sS][tTeE]|[hH][tT]|[rR][eE]|[fF][aA]|[gG][oO]|[eE][rR]|[1-5])"
    rf"(?i:\b(?:{_STRONG_STATUS_WORDS})\b[\s:=#]{{0,3}}[1-5]\d\d(?![\w.])"
    rf"|\b(?:{_WEAK_STATUS_WORDS})\b[\s:=#]{{0,3}}[1-5]\d\d(?![\w.])(?!\s*[a-z])"
    rf")|\b[1-5]\d\d (?=(?:{_REASON_PHRASES})\b)"
)

_EMAIL = r"(?<![\w.+%-])[\w.+%-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"
# Any scheme://...; stops before trailing punctuation so "(see https://x/y)." keeps ")."
_URL = r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"

_TLDS = (
    "com|net|org|edu|gov|mil|int|info|biz|io|co|ai|app|dev|cloud|tech|site|online|xyz"
    "|de|uk|fr|nl|es|it|ru|cn|jp|br|au|ca|ch|se|no|fi|dk|pl|be|at|cz|pt|ie|nz|za|kr"
    "|tw|hk|sg|mx|ar|cl|us|eu|me|tv|ly|gg|local|internal|localdomain|lan|corp|svc|cluster"
)
# (The look-ahead is implied by the rest - a "." then the letters of a TLD, within a run of
# host name characters - and makes most non-hosts fail before the TLD list is tried.)
_HOSTNAME = (
    rf"(?<![\w.@-])(?=[a-zA-Z0-9.-]*?\.[a-zA-Z])(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{{0,61}}[a-zA-Z0-9])?\.)+"
    rf"(?:(?:{_TLDS})|(?:{_TLDS.upper()}))(?!\.?[\w-])"
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?::\d{{1,5}})?(?![\w]|\.\d)"
_H = r"[0-9a-fA-F]{1,4}"
# Full 8-group form, or a compressed form with "::" that contains at least one digit
# (guards against C++/PHP/Rust "Class::method" and "Foo::Bar").
_IPV6_BODY = (
    rf"(?=[0-9a-fA-F:]*\d)(?:{_H}:){{7}}{_H}"
    rf"|(?=[0-9a-fA-F:]*\d)(?:{_H}(?::{_H}){{0,6}})?::"
    rf"(?:(?:{_H}:){{0,5}}{_OCTET}(?:\.{_OCTET}){{3}}|{_H}(?::{_H}){{0,6}})?"
)
_IPV6 = (
    rf"\[(?:{_IPV6_BODY})(?:%[\w.]+)?\](?::\d{{1,5}})?"
    rf"|(?<![\w:.])(?:{_IPV6_BODY})(?:%[\w.]+)?(?![\w:])"
)
_IP = rf"{_IPV4}|{_IPV6}"

_TRACEPARENT = (
    r"\b00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]\b"  # W3C traceparent
    r"|\b1-[0-9a-f]{8}-[0-9a-f]{24}\b"  # AWS X-Ray / ALB trace id
)
_UUID = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
# Digests: standalone hex strings of exact lengths (containing at least one digit).
_SHA256 = r"\b(?=[0-9a-fA-F]{64}\b)(?=[a-fA-F]*\d)[0-9a-fA-F]{64}\b"
_SHA1 = r"\b(?=[0-9a-fA-F]{40}\b)(?=[a-fA-F]*\d)[0-9a-fA-F]{40}\b"
_MD5 = r"\b(?=[0-9a-fA-F]{32}\b)(?=[a-fA-F]*\d)[0-9a-fA-F]{32}\b"

_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_ZONE = r"(?:\s?(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT|[A-Z]{3,4}))"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
_DATE = (
    # guard: every branch starts with a day/month name and " " or ",", a long day name and
    # ",", "datetime.", or digits shaped like "2019-", "2019/", "20190417T", "17 Jan", "17/",
    # "17.", "17:"
    rf"(?=(?:{_DAY}|{_MON})[ ,]|{_LONG_DAY},|datetime\.|\d{{4}}[-/]|\d{{8}}T"
    r"|\d{1,2}(?: [A-Z]|[/.:]\d))(?:"
    # ISO 8601 / RFC 3339 and "YYYY-MM-DD HH:MM[:SS[.fff]]" (also with slashes)
    rf"\b\d{{4}}(?:-\d{{2}}-|/\d{{2}}/)\d{{2}}(?:[T ]{_CLOCK}(?:{_ZONE}(?![a-z]))?)?(?![\w:])"
    # compact ISO: 20190417T202905Z
    r"|\b\d{8}T\d{6}(?:\.\d+)?Z?\b"
    # JavaScript Date.toString(): Wed Apr 17 2019 22:31:45 GMT+0200 (Central European ...)
    rf"|\b{_DAY} {_MON} \d{{1,2}} \d{{4}} {_CLOCK}(?: GMT[+-]\d{{4}})?(?: \([^)]*\))?"
    # C asctime: Wed Apr 17 22:31:45 2019
    rf"|\b{_DAY} {_MON} +\d{{1,2}} {_CLOCK}(?: [A-Z]{{3,4}})? \d{{4}}\b"
    # RFC 822/1123: Mon, 02 Jan 2006 15:04:05 MST
    rf"|\b{_DAY}, \d{{1,2}} {_MON} \d{{2,4}}(?: {_CLOCK})?(?: (?:[A-Z]{{2,4}}|[+-]\d{{4}}))?\b"
    # RFC 850: Monday, 02-Jan-06 15:04:05 MST
    rf"|\b{_LONG_DAY}, \d{{2}}-{_MON}-\d{{2}} {_CLOCK} [A-Z]{{3,4}}\b"
    # Jan 02, 1999 [15:04[:05]] / 02 Jan 2006 [15:04]
    rf"|\b{_MON} \d{{1,2}},? \d{{4}}(?: {_CLOCK})?\b"
    rf"|\b\d{{1,2}} {_MON} \d{{4}}(?: {_CLOCK})?\b"
    # 17/04/2019, 04/17/2019, 17.04.2019 (4-digit year required: "3/4" is not a date)
    r"|\b\d{1,2}(?:/\d{1,2}/|\.\d{1,2}\.)\d{4}\b"
    # Python reprs: datetime.datetime(2019, 4, 17, 20, 29, 5), datetime.date(2019, 4, 17)
    r"|\bdatetime\.(?:datetime|date|time)\([^)]*\)"
    # bare clock times: 14:05:09, 3:45 PM, 22:31
    rf"|(?<![\w:.]){_CLOCK}(?: ?[AaPp]\.?[Mm]\.?\b)?(?![\w:])"
    r")"
)

_DURATION = (
    r"(?<![\w.])(?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|ns)){2,}\b"  # Go style: 1h2m3.5s
    r"|(?<![\w.])\d+(?:\.\d+)?(?:ms|us|µs|ns|s|sec|secs|min|mins|h|hr|hrs)\b"
    r"|(?<![\w.])\d+(?:\.\d+)? ?(?:milliseconds?|microseconds?|nanoseconds?|seconds?"
    r"|minutes?|hours?|days?)\b"
)

_PATH_ROOTS = (
    r"home|Users|usr|var|tmp|opt|etc|srv|app|mnt|root|private|data|proc|dev|lib|lib64"
    r"|bin|sbin|run|nix|code|workspace|builds?|go|media|Volumes"
)
_PATH_CHARS = r"[\w.@%+~-]"
_PATH = (
    # Unix paths under a well-known root, or any absolute/relative path ending in file.ext
    rf"(?<![\w.:/\\<>-])/(?:{_PATH_ROOTS})/{_PATH_CHARS}*(?:/{_PATH_CHARS}*)*"
    rf"|(?<![\w.:/\\<>-])(?:~|\.\.?)?/(?:{_PATH_CHARS}+/)+{_PATH_CHARS}*\.[A-Za-z][\w]{{0,7}}\b"
    rf"|(?<![\w.:/\\<>-])(?:~|\.\.?)/(?:{_PATH_CHARS}+/?)+"
    # Windows: C:\Users\x\file.txt
    r"|\b[A-Za-z]:\\(?:[^\\\s:*?\"'<>|]+\\)*[^\\\s:*?\"'<>|]*"
)

_HEX = (
    r"(?<![\w-])-?0[xX][0-9a-fA-F]+\b"
    # unprefixed, single case, containing both a digit and a letter: 5-6 or 8-128 chars
    r"|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])(?:[0-9a-f]{8,128}|[0-9a-f]{5,6})\b"
    r"|\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])(?:[0-9A-F]{8,128}|[0-9A-F]{5,6})\b"
)
_GIT_SHA = r"\b(?=[0-9a-f]{7}\b)(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7}\b"

# A minus sign belongs to the number only when it does not join two words ("a-1").
_SIGN = r"(?:(?<![\w)\]-])-)?"
_FLOAT = rf"{_SIGN}(?<![\w.])\d+\.\d+(?:\.\d+)*(?:[eE][+-]?\d+)?(?!\w|\.\d)"
_INT = rf"{_SIGN}(?<![A-Za-z0-9.])\d+(?![A-Za-z0-9])"

_QUOTED_STR = r"(?<==)(?:\"[^\"]*\"|'[^']*')"
_BOOL = r"(?<==)(?:[Tt]rue|[Ff]alse|TRUE|FALSE)\b"

# Not a placeholder: a run of plain letters (or blanks/punctuation) that no pattern after it in
# the list can start in. Matching it consumes the run in one step instead of trying every
# alternative at every character; it is what makes the single pass fast. Its text is kept.
_BLANK_CHARS = r" \t\n,;(){}!?*#|<>\"'"
_BLANKS = rf"[{_BLANK_CHARS}]"
_PLAIN_WORD = rf"[A-Za-z][A-Za-z_]*(?:(?<=_)|(?![\w@.:/\\+%&-]){_BLANKS}*)"
# A later word in the run must not be one that starts a status or date match.
# (The case-insensitive alternation is costly: it is only tried on words whose first letter
# can start one of those words; the guard changes nothing else.)
_NOT_SPECIAL = (
    rf"(?!(?=[sShHrRgGeEfF])(?i:{_STRONG_STATUS_WORDS}|{_WEAK_STATUS_WORDS})\b"
    rf"|(?=[MTWFSJAOND])(?:{_LONG_DAY}|{_DAY}|{_MON})\b)"
)
# A later word of a run: ``(?<![=\w]){_NOT_SPECIAL}{_PLAIN_WORD}``, with the (nested) look-ahead
# of _NOT_SPECIAL only tried on words whose first letter can start a status or date word.
_NEXT_WORD = (
    rf"(?<![=\w])(?:[a-dijk-qt-zBCIKLPQUVXYZ]|{_NOT_SPECIAL}[A-Za-z])[A-Za-z_]*"
    rf"(?:(?<=_)|(?![\w@.:/\\+%&-]){_BLANKS}*)"
)
# (As many later words as there are, never fewer: nothing after "skip" in a match could make
# the regex try fewer, so the repetition is possessive - the same matches, less bookkeeping.)
_SKIP = rf"(?<![=\w]){_PLAIN_WORD}(?:{_NEXT_WORD})*+|(?<!=){_BLANKS}+"
# What "skip" matches where it is sure to be the first pattern that matches, decided before
# the others are tried: a blank run, or a run whose first word starts no status or date
# (``_NOT_SPECIAL``) and ends with a letter that none of ``\w@.:/\\+%&-`` follows (so it
# starts no e-mail or URL either; "skip" takes the same first word: no "_" to stop at).
# Spares most word starts the failed tries of status, e-mail, URL and date.
_PLAIN_RUN = (
    rf"(?<![=\w]){_NOT_SPECIAL}[A-Za-z][A-Za-z_]*(?<=[A-Za-z])(?![\w@.:/\\+%&-]){_BLANKS}*"
    rf"(?:{_NEXT_WORD})*+|(?<!=){_BLANKS}+"
)

# A "stop": "." or ":" followed by a blank or the end of the text. No pattern can start at a
# stop (only e-mail, path and ip can start with "." or ":", none with a blank next), and the
# blanks after it are a run of "skip" (its blank branch only refuses to start after "=").
_STOP = rf"[.:](?![^{_BLANK_CHARS}])"
# Not a placeholder either: a word that "skip" refuses because a stop ends it ("failed.",
# "server: "), with its stop and the blanks after it. Where "skip" fails on such a word no
# later pattern can match: they need a digit, "-", "=" before, "\\" or "/" after the ":", or
# a "." that a letter follows. Without it each such word costs a failed try of every
# pattern at its first letter, then at its stop.
_STOP_WORD = rf"(?<![=\w])[A-Za-z][A-Za-z_]*(?<=[A-Za-z]){_STOP}{_BLANKS}*"

# A common case decided first: a plain integer followed by a blank, a stop or the end, which no
# other pattern could claim (they need ".", ":", "-", letters or a unit after the digits, a
# digit after a "." or ":", or "@"; "404 Not Found" and "17 Jan" - a blank and a capital - are
# left to the status and date patterns). Tried before every other pattern, it spares each such
# number the failed tries of status, e-mail and date; "int" would give it the same "<int>".
_PLAIN_INT = (
    rf"(?<![A-Za-z0-9.])\d{{1,31}}(?=[ \t\n,;)\]}}'\"]|{_STOP}|$)"
    r"(?! ?(?:milliseconds?|microseconds?|nanoseconds?|seconds?|minutes?|hours?|days?)\b)"
    r"(?! [A-Z])"
)

# Patterns whose matches are kept verbatim.
KEEP = frozenset({"plain_run", "status", "skip", "stop_word"})

# Order matters (see module docstring; "plain_int" and "plain_run" come first: see above). "skip" must come
# after every pattern that can match a run of plain letters at a word start (status words,
# e-mail local parts, URL schemes, day and month names); everything after it starts with a
# digit, a separator or needs a character that ends the skip run.
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("plain_int", _PLAIN_INT),
    ("plain_run", _PLAIN_RUN),
    ("status", _STATUS),
    ("email", _EMAIL),
    ("url", _URL),
    ("date", _DATE),
    ("skip", _SKIP),
    ("stop_word", _STOP_WORD),
    ("traceparent", _TRACEPARENT),
    ("uuid", _UUID),
    ("hostname", _HOSTNAME),
    ("ip", _IP),
    ("sha256", _SHA256),
    ("sha1", _SHA1),
    ("md5", _MD5),
    ("duration", _DURATION),
    ("path", _PATH),
    ("hex", _HEX),
    ("git_sha", _GIT_SHA),
    ("float", _FLOAT),
    ("int", _INT),
    ("quoted_str", _QUOTED_STR),
    ("bool", _BOOL),
)

# The characters each pattern can start with (a superset; checked by a property test). The
# combined regex only tries, at each position, the patterns that can start with its character.
_W = r"\w"  # any word character, Unicode included
FIRST_CHARS: dict[str, str] = {
    "status": "sShHrRgGeEfF1-5",
    "email": _W + ".+%-",
    "url": "a-zA-Z",
    "date": r"MTWFSJAONDd\d",
    "skip": r"A-Za-z \t\n,;(){}!?*#|<>\"'",
    "plain_run": r"A-Za-z \t\n,;(){}!?*#|<>\"'",
    "stop_word": "A-Za-z",
    "plain_int": r"\d",
    "traceparent": "01",
    "uuid": "0-9a-fA-F",
    "hostname": "a-zA-Z0-9",
    "ip": r"\d0-9a-fA-F:\[",
    "sha256": "0-9a-fA-F",
    "sha1": "0-9a-fA-F",
    "md5": "0-9a-fA-F",
    "duration": r"\d",
    "path": r"/~.A-Za-z",
    "hex": "0-9a-fA-F-",
    "git_sha": "0-9a-f",
    "float": r"\d-",
    "int": r"\d-",
    "quoted_str": "\"'",
    "bool": "TtFf",
}

# Inside a word no pattern can start: every one needs a word boundary, a look-behind that
# rejects a preceding letter or digit, or "=" before it (only "int" may start right after "_",
# as in "item_42"). So a run of ASCII letters and digits that follows a letter or digit (plus
# one "_" after it) is copied as it is in one step; without this the regex would be tried at
# each character of a word it could not skip as a whole ("failed." / "connect:").
# A stop (with the blanks after it) is copied in one step too ("10.2.3.4:5432: connect").
WORD_TAIL = rf"(?<=[A-Za-z0-9])(?:[A-Za-z0-9]+_?|_)|{_STOP}{_BLANKS}*"

# Patterns whose matches never end with "=": a run of blanks right after one of their matches
# is always matched next by "skip" (nothing before it in the list starts with a blank, and
# its blank branch only refuses to start after "="), and kept. The combined regex lets such
# a match take the blanks along (replacement + blanks), which saves a match per number.
# (Not url or path: they may end with "=".)
BLANKS = _BLANKS
TAKES_BLANKS = frozenset(
    {"email", "date", "traceparent", "uuid", "hostname", "ip", "sha256", "sha1", "md5"}
    | {"duration", "hex", "git_sha", "float", "int", "plain_int", "quoted_str", "bool"}
)

# Character classes (ASCII, disjoint) for which the combined regex tries only the patterns
# that can start with such a character; any other character tries every pattern.
DISPATCH_CLASSES = (
    "g-zG-Z",  # letters that are not hex digits
    "a-fA-F",
    "0-9",
    r" \t\n,;(){}!?*#|<>\"'",  # the blanks of "skip"
    r".\-:\[/~_+%",
)

# Patterns that cannot match text without a digit: left out of the regex used for such text.
NEEDS_DIGIT = frozenset(
    {"status", "date", "traceparent", "uuid", "ip", "sha256", "sha1", "md5", "duration"}
    | {"hex", "git_sha", "float", "int", "plain_int"}
)

# --- grouping v2: the two categories of Sentry's newest list that v1 lacks ------------------
# (v1's patterns above are frozen: its fingerprints are stored in issues.)
# OpenStack Swift transaction ids: "tx" + 21 hex + "-" + 10 hex, plus any non-blank suffix.
_SWIFT_TXN_ID = r"\btx[0-9a-f]{21}-[0-9a-f]{10}\S*"
# Unprefixed hex words from 4 characters on (v1: from 5), as Sentry's: "a1b2", "FF00".
_HEX_V2 = (
    r"(?<![\w-])-?0[xX][0-9a-fA-F]+\b"
    r"|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])(?:[0-9a-f]{8,128}|[0-9a-f]{4,6})\b"
    r"|\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])(?:[0-9A-F]{8,128}|[0-9A-F]{4,6})\b"
)


def _v2_patterns() -> tuple[tuple[str, str], ...]:
    patterns = []
    for name, regex in BUILTIN_PATTERNS:
        patterns.append((name, _HEX_V2 if name == "hex" else regex))
        if name == "duration":  # Sentry's order: ..., duration, swift_txn_id, hex, ...
            patterns.append(("swift_txn_id", _SWIFT_TXN_ID))
    return tuple(patterns)


BUILTIN_PATTERNS_V2 = _v2_patterns()
FIRST_CHARS_V2 = {**FIRST_CHARS, "swift_txn_id": "t"}
# (a transaction id always has digits in practice: left out of the digit-less regex, like hex)
NEEDS_DIGIT_V2 = NEEDS_DIGIT | {"swift_txn_id"}
