"""One registry per config group, keyed by the option's file name.

Each option module registers its implementation with ``@REGISTRY.register("name")``;
a duplicate name is an error, and looking up an unknown name names the group
and lists what is allowed.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, group: str):
        self.group = group
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise KeyError(f"{self.group} registry: duplicate name {name!r}")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(
                f"{self.group}={name!r}: unknown option; allowed: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
