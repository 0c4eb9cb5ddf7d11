"""The errors a user can cause (a file, a value, a path): the command line prints the
message, one line, and exits with status 2. Every layer of ``liquid_rl.agents`` raises
these, so they depend on nothing."""

from __future__ import annotations

__all__ = ["UserError", "ConfigError"]


class UserError(Exception):
    """A problem with what the user asked for (a file, a value, a path)."""


class ConfigError(UserError):
    """An invalid experiment config; the message names the key."""

    def __init__(self, message: str) -> None:
        super().__init__(message if message.startswith("config") else f"config: {message}")
