"""The console's settings: the models live in `engine.config.console` with the rest."""

from engine.config.console import (
    ROLES,
    ConsoleConfig,
    ConsoleTls,
    ConsoleToken,
    ConsoleUser,
    Role,
    SignInThrottle,
)

__all__ = [
    "ROLES",
    "ConsoleConfig",
    "ConsoleTls",
    "ConsoleToken",
    "ConsoleUser",
    "Role",
    "SignInThrottle",
]
