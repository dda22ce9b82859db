"""setbridge's own exceptions: each carries a message a user can act on."""

from __future__ import annotations


class SetbridgeError(Exception):
    """Base class of every error setbridge reports to a user."""


class ConfigError(SetbridgeError):
    """The configuration is invalid; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("; ".join(lines))


class PayloadError(SetbridgeError):
    """An MQTT payload was rejected; the message says why in one line."""


class ModelError(SetbridgeError):
    """A speech model is missing, broken or lacks a trigger word."""


class AudioError(SetbridgeError):
    """An audio source could not be opened or failed while running."""


class BrokerUnreachable(SetbridgeError):
    """A command-line tool could not connect; ``kind`` is ``unreachable``, ``login`` or ``protocol``."""

    def __init__(self, message: str, kind: str):
        self.kind = kind
        super().__init__(message)
