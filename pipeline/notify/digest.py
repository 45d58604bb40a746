"""Per-route throttling and digests: a burst of alerts becomes one message.

A route is *quiet* until it sends; the first alert of a quiet route goes out at once and opens
a window of ``digest_window`` seconds. Alerts arriving while the window is open are held; when
it closes, everything held goes out as one message (a digest, or a single alert if only one
was held) and a new window opens. A window that closes with nothing held leaves the route
quiet again. So a route sends at most one message per window, and a lone alert is never
delayed.

    t=0   alert A → sent (window until 60)
    t=5   alert B → held
    t=40  alert C → held
    t=60  window closes → "2 alerts in the last minute: B, C" (window until 120)
    t=120 window closes, nothing held → quiet
    t=130 alert D → sent (window until 190)

Held alerts carry an opaque ``token`` (the notifier's offset handle): a held alert's offset
is not committed until the message that carries it has been delivered or dead-lettered.
Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """What one delivery sends: one alert, or a digest of several."""

    route: str
    alerts: tuple[dict[str, Any], ...]
    tokens: tuple[Any, ...]
    window: float  # the route's digest window, for the digest's wording

    @property
    def is_digest(self) -> bool:
        return len(self.alerts) > 1


@dataclass
class Throttle:
    route: str
    window: float
    open_until: float = float("-inf")
    held: list[tuple[dict[str, Any], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.window = float(self.window)

    def offer(self, alert: dict[str, Any], token: Any, now: float) -> Message | None:
        """An alert for this route: the message to send now, or None when it is held."""
        if self.window <= 0 or (now >= self.open_until and not self.held):
            self.open_until = now + self.window
            return Message(self.route, (alert,), (token,), self.window)
        self.held.append((alert, token))
        return self.due(now)

    def due(self, now: float) -> Message | None:
        """The held alerts as one message when the window has closed, else None."""
        if not self.held or now < self.open_until:
            return None
        self.open_until = now + self.window
        return self._take()

    def flush(self) -> Message | None:
        """Everything held, now (shutdown, partitions revoked); the window stays as it is."""
        return self._take() if self.held else None

    def next_due(self) -> float | None:
        return self.open_until if self.held else None

    def _take(self) -> Message:
        alerts = tuple(a for a, _ in self.held)
        tokens = tuple(t for _, t in self.held)
        self.held = []
        return Message(self.route, alerts, tokens, self.window)
