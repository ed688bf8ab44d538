"""User-facing errors: one clear line naming the key, the value and what is allowed."""
from __future__ import annotations

from typing import Container, Iterable


class ConfigError(ValueError):
    """Bad user input (a config value, a path, a file). Reported as one line, no traceback."""


def require(cond: bool, key: str, value, allowed: str) -> None:
    """Raise ConfigError('key=value: allowed') unless cond holds."""
    if not cond:
        raise ConfigError(f"{key}={value!r}: {allowed}")


def reject_unknown(given: Iterable, known: Container, prefix: str, what: str = "unknown key",
                   allowed: Iterable[str] | None = None, values: dict | None = None) -> None:
    """The first key of `given` not in `known` as one ConfigError line, `<prefix><key>: <what>; allowed: ...`
    (`allowed`: the list shown, default `known`; with `values`, the key's value is shown as `<key>=<value>`)."""
    for k in given:
        if k not in known:
            shown = f"{prefix}{k}" if values is None else f"{prefix}{k}={values[k]!r}"
            raise ConfigError(f"{shown}: {what}; allowed: {', '.join(known if allowed is None else allowed)}")
