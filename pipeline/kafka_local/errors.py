"""Errors with messages meant to be printed as one line to a person."""

from __future__ import annotations


class KafkaLocalError(Exception):
    """Base for everything the local-broker tooling raises on purpose."""


class KafkaSetupError(KafkaLocalError):
    """Java/Maven missing, or the jars could not be fetched."""


class PortInUse(KafkaLocalError):
    """The broker's client or controller port is already taken by another process."""


class BrokerStartError(KafkaLocalError):
    """The JVM exited or never became ready. ``str()`` is one line; ``log_tail`` has the details."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class KafkaUnavailable(KafkaLocalError):
    """No metadata round-trip with the broker succeeded before the deadline."""
