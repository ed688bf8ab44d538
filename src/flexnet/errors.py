"""User-facing errors: one clear line naming the key, the value and what is allowed."""
from __future__ import annotations

import sys
from typing import Container, Iterable, NoReturn

# exit codes: 2 refused (bad input, a path or directory that cannot be used: nothing was run),
# 1 a fault during the run (disk full, a file that cannot be written: the journal keeps what finished),
# 130 Ctrl-C, 143 SIGTERM (both: the journal keeps what finished, the line says how to resume)
REFUSED, FAULT = 2, 1


class ConfigError(ValueError):
    """Bad user input (a config value, a path, a file). Reported as one line, no traceback."""


def die(message: str, code: int = REFUSED) -> NoReturn:
    """The one way flexnet ends on an error: `flexnet: error: <message>` (one line) on stderr, exit `code`.

    Used by the job (`__main__.main`), the CLI wrapper (`__main__.cli`), the Hydra callbacks (where an
    ordinary exception would be turned into a warning by Hydra) and the launchers."""
    line = " ".join(str(message).split("\n")).strip()
    print(f"flexnet: error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


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


class JobsFailed(RuntimeError):
    """Jobs of a sweep that ended without a result (raised by flexnet's launchers once every job has
    been collected; `python -m flexnet` reports it as one line, exit 1)."""

    def __init__(self, failed: list, total: int, sweep_dir: str):
        self.failed, self.total, self.sweep_dir = list(failed), int(total), str(sweep_dir)
        first = self.failed[0] if self.failed else "?"
        more = f" (and {len(self.failed) - 1} more; each job's reason and log above)" if len(self.failed) > 1 else ""
        super().__init__(f"{len(self.failed)} of {total} jobs of the sweep failed: {first}{more}; the finished jobs' "
                         f"results are in {sweep_dir} (python -m flexnet.report {sweep_dir})")
