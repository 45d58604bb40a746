"""Reload a rules file when it changes, keeping the last good rules when a reload is invalid.

The caller polls (e.g. once a second from a timer); nothing here runs in the background::

    watcher = RulesWatcher("deploy/grouping-rules.toml")   # raises RulesError if invalid
    ...
    outcome = watcher.poll()
    if outcome.error:
        log.warning("grouping rules not reloaded: %s", outcome.error)   # old rules stay
    config = replace(config, rules=watcher.rules)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.grouping.rules import Rules, RulesError, load_rules


@dataclass(frozen=True)
class ReloadOutcome:
    reloaded: bool  # new rules are in effect
    error: RulesError | None = None  # the file changed but is invalid (the old rules stay)


class RulesWatcher:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp = self._current_stamp()
        self._rules = load_rules(self.path)
        self.last_error: RulesError | None = None

    @property
    def rules(self) -> Rules:
        """The rules in effect: the last file contents that were valid."""
        return self._rules

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def poll(self) -> ReloadOutcome:
        """Reload if the file's mtime (or size) changed since the last look."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return ReloadOutcome(reloaded=False, error=None)
        self._stamp = stamp
        if stamp is None:
            self.last_error = RulesError(str(self.path), None, "rules file disappeared")
            return ReloadOutcome(reloaded=False, error=self.last_error)
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            self.last_error = exc
            return ReloadOutcome(reloaded=False, error=exc)
        self._rules = rules
        self.last_error = None
        return ReloadOutcome(reloaded=True, error=None)
