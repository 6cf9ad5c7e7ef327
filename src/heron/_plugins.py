"""One registration mechanism for everything that plugs into heron.

A :class:`Registry` maps names to objects (retriever factories, field encoders, evaluation
hooks). Modules register what they provide when they are imported (``@REG.register("name")``),
as ir_measures providers do; a registry miss loads the Python entry points of the registry's
group, so a third-party package adds a capability by declaring, in its ``pyproject.toml``::

    [project.entry-points."heron.capabilities"]
    mymethod = "mypackage.heron_plugin"

heron's own capabilities are declared the same way in heron's ``pyproject.toml``: no layer keeps
a list of the modules above it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("heron.plugins")


class Registry(Generic[T]):
    """Named objects of one kind, filled by registration and by entry points of ``group``."""

    def __init__(self, group: str, what: str) -> None:
        self.group, self.what = group, what
        self._items: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` it is a decorator."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.what} name must be a non-empty string, got {name!r}")

        def put(o: T) -> T:
            self._items[name] = o
            return o

        return put if obj is None else put(obj)

    def load_entry_points(self) -> None:
        """Import every module declared under this registry's entry-point group (once)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            from importlib.metadata import entry_points

            for ep in entry_points(group=self.group):
                try:
                    ep.load()
                except ModuleNotFoundError as exc:  # an optional extra that is not installed
                    log.debug("skipping %s plug-in %s: %s", self.group, ep.value, exc)

    def get(self, name: str) -> T:
        if name not in self._items:
            self.load_entry_points()
        if name not in self._items:
            raise ValueError(
                f"unknown {self.what} {name!r}; choose one of {self.names()}"
            )
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self.load_entry_points()
        return name in self._items

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self.load_entry_points()
        return iter(sorted(self._items.items()))


def registry_of(group: str, what: str) -> Registry[Any]:
    """The process-wide registry of ``group`` (created on first use)."""
    with _LOCK:
        if group not in _REGISTRIES:
            _REGISTRIES[group] = Registry(group, what)
        return _REGISTRIES[group]


_REGISTRIES: dict[str, Registry[Any]] = {}
_LOCK = threading.Lock()

__all__ = ["Registry", "registry_of"]
