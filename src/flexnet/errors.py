"""User-facing errors: one clear line naming the key, the value and what is allowed."""


class ConfigError(ValueError):
    """Bad user input (a config value, a path, a file). Reported as one line, no traceback."""


def require(cond: bool, key: str, value, allowed: str) -> None:
    """Raise ConfigError('key=value: allowed') unless cond holds."""
    if not cond:
        raise ConfigError(f"{key}={value!r}: {allowed}")
