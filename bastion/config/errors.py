"""The one error type configuration problems raise: its message names the offending key."""


class ConfigError(Exception):
    """Invalid configuration. ``str(error)`` is a human-readable list of ``key: problem`` lines."""
