"""A tiny name -> object registry shared by architectures, algorithms and attacks, with lazily loaded
third-party plugins (victims/plugins.py)."""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from . import plugins

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid) or '(none registered)'}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to objects; `register` is a decorator, `get` raises `UnknownNameError`.

    After `plugins_from(group)` the first lookup (get, names, `in`, iteration, len, sources) loads the
    entry points of `group`; what was registered before that call is built-in."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}
        self._group: str | None = None
        self._adopt: Callable[[str, Any], T] | None = None
        self._state = "off"  # off (no plugins) | pending | loading | done
        self._plugins: dict[tuple[str, str, str], list[tuple[Registry, str]]] = {}  # entry point -> registered
        self.failures: list[plugins.PluginFailure] = []

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            self.check_free(name)
            self._items[name] = obj
            self._sources[name] = plugins.current_source()
            plugins.note_registration(self, name)
            return obj

        return decorate

    def check_free(self, name: str) -> None:
        """ValueError naming both sources when `name` is taken."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice (first by {self._sources[name]}, "
                             f"now by {plugins.current_source()}); rename one of them")

    def unregister(self, name: str) -> T:
        """Remove `name` (an uninstalled plugin, a test's throw-away entry) and return what it held."""
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self.names())
        return self.discard(name)

    def discard(self, name: str) -> T | None:
        """Remove `name` if registered (no lookup, no plugin loading); return what it held."""
        self._sources.pop(name, None)
        return self._items.pop(name, None)

    def holds(self, obj: object) -> bool:
        """Whether `obj` itself is registered (under any name)."""
        return any(item is obj for item in self._items.values())

    # -- plugins --
    def plugins_from(self, group: str, adopt: Callable[[str, Any], T] | None = None) -> None:
        """Load the entry points of `group` on the first lookup; `adopt(name, obj)` checks an object entry
        point (raising TypeError for a wrong type) and returns what to register under `name`."""
        self._group, self._adopt, self._state = group, adopt, "pending"

    def _ensure_plugins(self) -> None:
        if self._state == "pending":
            self._state = "loading"  # lookups made while plugins load see what is there so far
            try:
                self._load_new(plugins.discover(self._group))
            finally:
                self._state = "done"

    def _load_new(self, eps: list) -> None:
        for ep in eps:
            key = (ep.name, ep.value, plugins.distribution_of(ep))
            if key not in self._plugins:
                made, failure = plugins.load_entry_point(self, ep, self._adopt)
                if failure is None:
                    self._plugins[key] = made
                else:
                    self.failures.append(failure)

    def refresh_plugins(self) -> None:
        """Look at the installed entry points again: drop what uninstalled plugins registered, load new ones
        (and retry failed ones)."""
        if self._state == "off":
            return
        self._ensure_plugins()
        eps = plugins.discover(self._group)
        installed = {(ep.name, ep.value, plugins.distribution_of(ep)) for ep in eps}
        for key in [k for k in self._plugins if k not in installed]:
            for owner, name in self._plugins.pop(key):
                owner.discard(name)
        self.failures = []
        self._load_new(eps)

    def sources(self) -> dict[str, str]:
        """name -> where it came from: 'built-in' or the plugin's 'distribution version'."""
        self._ensure_plugins()
        return dict(self._sources)

    # -- lookups --
    def get(self, name: str) -> T:
        self._ensure_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        self._ensure_plugins()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        self._ensure_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self._ensure_plugins()
        return iter(list(self._items))

    def __len__(self) -> int:
        self._ensure_plugins()
        return len(self._items)
