"""User-facing errors. The CLI prints any `FinMetaError` as one line and exits 2."""

from __future__ import annotations

__all__ = ["FinMetaError", "DataError", "ConfigError", "AgentError", "StrategyError"]


class FinMetaError(Exception):
    """Base of every error caused by the user's input (data, config, files), not by a bug."""


class DataError(FinMetaError, ValueError):
    """Prices that cannot be loaded or fail validation; the message names the source, the
    column or row, and what is wrong."""


class ConfigError(FinMetaError, ValueError):
    """An experiment file or override that is invalid; the message names the offending key."""


class AgentError(FinMetaError):
    """A saved agent that is missing, corrupt or incompatible with this fin-meta version."""


class StrategyError(FinMetaError, ValueError):
    """An unknown strategy, a bad strategy parameter, or positions that break the conventions."""
