"""One registry per config group, keyed by the option's file name (`conf/<group>/<name>.yaml`).

Each option module registers its implementation with ``@REGISTRY.register("name")`` (or
``REGISTRY.add("name", obj)``); the registry records the module that registered it, so an option
name leads to its code in one hop (`module_of`, `python -m flexnet.describe`, the unknown-option
error). A duplicate name is an error, and looking up an unknown name names the group, lists what is
allowed and says where options live. `registries()` is every group's registry, filled.
"""
from __future__ import annotations

import sys
from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")



def _caller_module(depth: int) -> str:
    """The module `depth` frames above the caller of this function (the one registering an option)."""
    return sys._getframe(depth + 1).f_globals.get("__name__", "?")


def code_of(modules: list[str]) -> str:
    """The one module, or the package of several with `.*` (flexnet.models.*): where the code of a group is."""
    parts = [m.split(".") for m in sorted(set(modules))]
    if len(parts) == 1:
        return ".".join(parts[0])
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return ".".join(common) + ".*"


def option_hint(group: str, modules: list[str], what: str = "code") -> str:
    """Where a group's options live, for one-line errors: `(conf/<group>/<name>.yaml; code: <module>)`."""
    return f"(conf/{group}/<name>.yaml; {what}: {code_of(modules)})" if modules else f"(conf/{group}/<name>.yaml)"


class Registry(Generic[T]):
    def __init__(self, group: str):
        self.group = group
        self._items: dict[str, T] = {}
        self._modules: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        module = _caller_module(1)

        def deco(obj: T) -> T:
            self.add(name, obj, module=module)
            return obj

        return deco

    def add(self, name: str, obj: T, module: str | None = None) -> None:
        """Register obj as option `name`; `module` (default: the calling module) is where it is defined."""
        if name in self._items:
            raise KeyError(f"{self.group} registry: duplicate name {name!r}")
        self._items[name] = obj
        self._modules[name] = module or _caller_module(1)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"{self.group}={name!r}: unknown option; allowed: {', '.join(sorted(self._items))} "
                              f"{self.hint()}")
        return self._items[name]

    def hint(self) -> str:
        """Where this group's options live, for one-line errors (option_hint)."""
        return option_hint(self.group, list(self._modules.values()))

    def module_of(self, name: str) -> str:
        """The module that registered option `name` (e.g. flexnet.models.resnet for arch=resnet)."""
        self.get(name)
        return self._modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)


def registries() -> dict[str, Registry]:
    """Every config group's registry (group -> Registry), filled (importing a package registers its options)."""
    from .data import DATASETS, LABELINGS
    from .search import SEARCHES
    from .models import ARCHS, SCALINGS
    from .optim import OPTIMIZERS, REGULARIZERS, REPARAMS
    from .loggers import LOGGERS

    regs = (DATASETS, LABELINGS, ARCHS, SCALINGS, OPTIMIZERS, REGULARIZERS, REPARAMS, SEARCHES, LOGGERS)
    return {r.group: r for r in regs}
