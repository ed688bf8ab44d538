"""The building blocks of every schema: `Schema` (a dataclass base whose `check()` holds the ranges and
cross-key rules), `Bad` (a range failure: field, value, what is allowed), and the range helpers the
`check()` methods call (`need`, `positive`, `positive_or_null`, `at_least`, `in_unit`, `one_of`,
`int_list`, `beta_pair`)."""
from __future__ import annotations

import math
from typing import Any

Group = str


class Bad(Exception):
    """A range failure inside a schema's check(): (field, value, allowed)."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(key)
        self.key, self.value, self.allowed = key, value, allowed


def need(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise Bad(key, value, allowed)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive(obj: Any, *keys: str) -> None:
    for k in keys:
        v = getattr(obj, k)
        need(is_number(v) and v > 0, k, v, "must be > 0")


def positive_or_null(obj: Any, key: str, allowed: str) -> None:
    v = getattr(obj, key)
    need(v is None or (is_number(v) and v > 0), key, v, allowed)


def at_least(obj: Any, lo: float, *keys: str) -> None:
    for k in keys:
        v = getattr(obj, k)
        need(v is None or (is_number(v) and v >= lo), k, v, f"must be >= {lo:g}")


def in_unit(obj: Any, key: str, lo_open: bool = False, hi_open: bool = True) -> None:
    v = getattr(obj, key)
    ok = is_number(v) and (v > 0 if lo_open else v >= 0) and (v < 1 if hi_open else v <= 1)
    need(ok, key, v, f"must lie in {'(' if lo_open else '['}0, 1{')' if hi_open else ']'}")


def one_of(obj: Any, key: str, allowed: tuple) -> None:
    v = getattr(obj, key)
    def show(a: Any) -> str:
        return repr(a) if a == "" else str(a).lower() if isinstance(a, bool) else str(a)

    need(v in allowed and (isinstance(v, bool) or not isinstance(v, int)), key, v,
         "allowed: " + ", ".join(show(a) for a in allowed))


class Schema:
    def check(self) -> None:
        """Ranges and cross-key rules (types are checked by OmegaConf before)."""


def int_list(obj: Any, key: str, lo: int = 1, nonempty: bool = True) -> None:
    v = getattr(obj, key)
    need((len(v) >= 1 or not nonempty) and all(x >= lo for x in v), key, v,
         f"must be a {'non-empty ' if nonempty else ''}list of integers >= {lo}")


def beta_pair(obj: Any) -> None:
    b = obj.betas
    need(len(b) == 2 and all(0 <= x < 1 for x in b), "betas", b, "must be two numbers in [0, 1), e.g. [0.9, 0.999]")
