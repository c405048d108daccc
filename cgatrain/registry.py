"""One small name -> object registry for every pluggable kind (models, data sets, partitions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def origin(obj: Any) -> str:
    """Where ``obj`` is defined, as ``module.qualname`` (through ``__wrapped__`` for wrappers)."""
    obj = getattr(obj, "__wrapped__", obj)
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


class Registry(Generic[T]):
    """Named objects of one ``kind``; ``register(name)`` is a decorator that returns the object unchanged."""

    def __init__(self, kind: str, error: type[Exception] = ValueError) -> None:
        """An empty registry; ``error`` is the exception class raised for unknown or clashing names."""
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make the decorated object selectable as ``{kind}={name}``."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name``; the same object (or a re-imported one from the same place) is a no-op."""
        existing = self._entries.get(name)
        # a reloaded module re-registers a new object defined at the same place: the newer one wins
        if existing is not None and existing is not obj and existing != obj and origin(existing) != origin(obj):
            raise self.error(f"{self.kind} {name!r} is already registered by {origin(existing)}; cannot register {origin(obj)} under the same name")
        self._entries[name] = obj
        return obj

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register a throw-away entry)."""
        self._entries.pop(name, None)

    def get(self, name: Any) -> T:
        """The object registered as ``name``; an unknown name lists the known ones."""
        if name not in self:
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (False for non-strings, even unhashable ones)."""
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted."""
        return iter(self.names())

    def __len__(self) -> int:
        """How many names are registered."""
        return len(self._entries)
