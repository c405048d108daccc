"""One small name -> object registry for every pluggable kind (algorithms, compressors, models, data sets,
partitions), and the plugin modules that registered into them, for processes that must import them again."""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")
PLUGINS_ENV = "CGATRAIN_PLUGINS"  # the plugin modules, for agent processes a job spawns


def origin(obj: Any) -> str:
    """Where ``obj`` is defined, as ``module.qualname`` (through ``__wrapped__`` for wrappers)."""
    obj = getattr(obj, "__wrapped__", obj)
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


def require_name(name: Any, decorator: str) -> str:
    """`name` if it is a non-empty string; else the TypeError of a decorator used bare (`@register_model`)."""
    if isinstance(name, str) and name:
        return name
    if callable(name):  # the decorated function or class itself: the decorator was used without (name)
        got = f"{'class' if isinstance(name, type) else 'function'} {getattr(name, '__qualname__', name)}"
        raise TypeError(f"{decorator} takes the name to register: write @{decorator}(\"NAME\") above it, "
                        f"not a bare @{decorator} (it got the {got})")
    raise TypeError(f"{decorator} takes the name to register as a non-empty string, got {name!r}")


def require_class(obj: Any, decorator: str, base: type) -> type:
    """`obj` if it is a subclass of `base`; else the TypeError of a class decorator given arguments (`@register("x")`)."""
    if isinstance(obj, type) and issubclass(obj, base):
        return obj
    if isinstance(obj, str):
        raise TypeError(f"@{decorator} takes no arguments: set the class attribute `name = {obj!r}` and write a bare "
                        f"@{decorator} above the class")
    raise TypeError(f"@{decorator} decorates a subclass of {base.__module__}.{base.__qualname__}, got {obj!r}")


def failure(error: BaseException) -> str:
    """An exception of a plugin's code as one line: its type, its message and where it was raised (file:line)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


class Registry(Generic[T]):
    """Named objects of one ``kind``; ``register(name)`` is a decorator that returns the object unchanged."""

    # Every live registry, for plugin_modules(); weak, so a throwaway registry (a test's) does not linger.
    instances: ClassVar[weakref.WeakSet[Registry[Any]]] = weakref.WeakSet()

    def __init__(self, kind: str, error: type[Exception] = ValueError) -> None:
        """An empty registry; ``error`` is the exception class raised for unknown or clashing names."""
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}
        self._registered_by: dict[str, str] = {}  # the module whose code registered each name
        Registry.instances.add(self)

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
        if existing is not obj:  # the same object again (a re-import, a test) keeps who registered it first
            self._registered_by[name] = _caller_module()
        self._entries[name] = obj
        return obj

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register a throw-away entry)."""
        self._entries.pop(name, None)
        self._registered_by.pop(name, None)

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


def plugin_modules() -> list[tuple[str, str | None]]:
    """(module, its file) of every module outside cgatrain that registered an object: what another process
    (a spawned agent, a submitit job and its agents) must import so that the names the command line uses exist there too."""
    found: dict[str, str | None] = {}
    for registry in Registry.instances:
        for module in registry._registered_by.values():
            if not module.startswith("cgatrain") and module not in ("__main__", "__mp_main__") and module in sys.modules:
                found[module] = getattr(sys.modules[module], "__file__", None)
    return sorted(found.items())


def _caller_module() -> str:
    """The module whose code registers (also a partial or an imported class): the first frame past cgatrain's
    register helpers, i.e. outside cgatrain or at a cgatrain module's top level (its built-ins)."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("cgatrain") and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


def import_plugins(modules: list[tuple[str, str | None]]) -> None:
    """Import the plugin modules of `plugin_modules()` (from their folder when it is not on the path)."""
    for module, path in modules:
        if module in sys.modules:
            continue
        if path is not None:  # the folder that holds the top-level package (or the module itself)
            root = Path(path).parent
            for _ in range(module.count(".") + (Path(path).name == "__init__.py")):
                root = root.parent
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
        importlib.import_module(module)


def export_plugins(modules: list[tuple[str, str | None]]) -> None:
    """Import the plugin modules here and name them in the environment the agents this process spawns inherit."""
    import_plugins(modules)
    if modules:
        os.environ[PLUGINS_ENV] = json.dumps(modules)


def import_exported_plugins() -> None:
    """In an agent: import the plugin modules the process that spawned it named (`export_plugins`).

    A plugin registered in the user's script itself (its `__main__`) is not among them: a spawned agent
    runs that script again, as `__mp_main__`, so only names registered at its module level exist there.
    """
    import_plugins([(module, path) for module, path in json.loads(os.environ.get(PLUGINS_ENV, "[]"))])
