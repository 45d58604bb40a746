"""Progress for long commands, on stderr, with no dependencies.

On a terminal: one bar redrawn in place (``\\r``). Otherwise (CI, log files, pipes): one plain
line every ``interval`` seconds, so logs stay readable. Always a summary line at the end.

    with Progress("migrate", total=len(pending), unit="migration") as p:
        for m in pending:
            apply(m)
            p.advance(1, note=m.name)
    # migrate: 5/5 migrations in 0.8s (6.2/s)
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

BAR_WIDTH = 30


def format_bar(done: float, total: float | None, width: int = BAR_WIDTH) -> str:
    """``[#######.......]  47%`` for a known total; ``[   <=>   ]`` style is not worth it:
    without a total the bar is just the count."""
    if not total:
        return ""
    frac = min(1.0, max(0.0, done / total))
    filled = int(round(frac * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {frac * 100:3.0f}%"


def format_count(n: float, unit: str) -> str:
    value = f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
    return f"{value} {unit}{'' if n == 1 or not unit else 's'}"


class Progress:
    def __init__(
        self,
        label: str,
        total: float | None = None,
        unit: str = "item",
        stream: IO[str] | None = None,
        interval: float = 5.0,
        tty: bool | None = None,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else getattr(self.stream, "isatty", lambda: False)()
        self.interval = interval if not self.tty else 0.1
        self.done = 0.0
        self.note = ""
        self.started = time.monotonic()
        self._last = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish(ok=exc[0] is None)

    def advance(self, n: float = 1, note: str = "") -> None:
        self.done += n
        if note:
            self.note = note
        self._maybe_draw()

    def set(self, done: float, note: str = "") -> None:
        self.done = done
        if note:
            self.note = note
        self._maybe_draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        count = format_count(self.done, self.unit)
        if self.total:
            count = f"{self.done:,.0f}/{format_count(self.total, self.unit)}"
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}:", format_bar(self.done, self.total), count, f"{rate:,.1f}/s"]
        if self.note:
            parts.append(self.note)
        return " ".join(p for p in parts if p)

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self, ok: bool = True) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = format_count(self.done, self.unit)
        if self.total:
            count = f"{self.done:,.0f}/{format_count(self.total, self.unit)}"
        status = "" if ok else " (interrupted)"
        summary = f"{self.label}: {count} in {elapsed:.1f}s ({rate:,.1f}/s){status}"
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(summary + "\n")
        self.stream.flush()
        return summary
