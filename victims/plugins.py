"""Third-party plugins: Python entry points of the groups `cp_bench.attacks`, `cp_bench.algorithms`,
`cp_bench.architectures` and `cp_bench.defenses`, loaded lazily by the registry that owns the group (`Registry.plugins_from`).

An entry point's value is a module (importing it registers what it defines, with the usual decorators) or an
object (`pkg.mod:MyAttack`), registered under the entry point's name. A plugin that fails to load (raises on
import, clashes with a name already registered, has the wrong type) is rolled back, kept as a
`PluginFailure` and reported as a `PluginWarning`; the built-ins and the other plugins keep working.

This module does not import victims/registry.py (which imports it): it sees a registry through the
`PluginRegistry` protocol, the part of `Registry` that loading a plugin uses.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Callable, Iterator, Protocol

BUILT_IN = "built-in"
GROUPS: dict[str, str] = {"attack": "cp_bench.attacks", "algorithm": "cp_bench.algorithms",
                          "architecture": "cp_bench.architectures", "defense": "cp_bench.defenses"}


class PluginRegistry(Protocol):
    """What loading a plugin needs of a registry (victims.registry.Registry provides it)."""

    kind: str

    def register(self, name: str) -> Callable[[Any], Any]: ...

    def check_free(self, name: str) -> None: ...

    def holds(self, obj: object) -> bool: ...

    def discard(self, name: str) -> Any: ...


class PluginWarning(UserWarning):
    """A plugin that could not be loaded (the rest of the benchmark works without it)."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that did not load: its entry point, its distribution and the error."""

    group: str
    name: str
    value: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return (f"plugin {self.name!r} ({self.group}: {self.value}) from {self.distribution} was not loaded: "
                f"{self.error}; fix or uninstall that distribution (pip uninstall)")


def distribution_of(ep: metadata.EntryPoint) -> str:
    """'name version' of the distribution that declares `ep` ('unknown distribution' when not known)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def discover(group: str) -> list[metadata.EntryPoint]:
    """The installed entry points of `group`, each once (a distribution seen twice on sys.path counts once)."""
    seen: dict[tuple[str, str], metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        seen.setdefault((ep.name, ep.value), ep)
    return list(seen.values())


# While a plugin loads: its source (for Registry.register to record) and what it registered (to roll back).
_loading: list[tuple[str, list[tuple[PluginRegistry, str]]]] = []


def current_source() -> str:
    """Where a registration now happening comes from: the plugin being loaded, else built-in."""
    return _loading[-1][0] if _loading else BUILT_IN


def note_registration(registry: PluginRegistry, name: str) -> None:
    """Called by `Registry.register`: remember what the plugin being loaded (if any) registered."""
    if _loading:
        _loading[-1][1].append((registry, name))


@contextlib.contextmanager
def _recording(source: str) -> Iterator[list[tuple[PluginRegistry, str]]]:
    made: list[tuple[PluginRegistry, str]] = []
    _loading.append((source, made))
    try:
        yield made
    finally:
        _loading.pop()


def register_object(registry: PluginRegistry, name: str, obj: Any, adopt: Callable[[str, Any], Any] | None) -> None:
    """Register an object entry point's `obj` under `name`: the name must be free and `obj` not registered
    already under another name (the entry point and the plugin's own registration must agree)."""
    registry.check_free(name)
    if registry.holds(obj):
        raise ValueError(f"{obj!r} is already in the {registry.kind} registry under another name; give the "
                         f"entry point the name it registers itself under")
    registry.register(name)(adopt(name, obj) if adopt else obj)


def load_entry_point(registry: PluginRegistry, ep: metadata.EntryPoint, adopt: Callable[[str, Any], Any] | None
                     ) -> tuple[list[tuple[PluginRegistry, str]], PluginFailure | None]:
    """Load one entry point into `registry`; return what it registered (in any registry) and its failure.

    `adopt(name, obj)` checks an object entry point's type (raising TypeError) and returns what to register."""
    source = distribution_of(ep)
    with _recording(source) as made:
        try:
            obj = ep.load()
            if not isinstance(obj, ModuleType) and (registry, ep.name) not in made:
                register_object(registry, ep.name, obj, adopt)
            return list(made), None
        except Exception as error:  # a broken plugin must not break the benchmark
            for owner, name in reversed(made):
                owner.discard(name)
            failure = PluginFailure(ep.group, ep.name, ep.value, source, f"{type(error).__name__}: {error}")
            warnings.warn(str(failure), PluginWarning, stacklevel=2)
            return [], failure
