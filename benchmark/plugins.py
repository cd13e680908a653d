"""`bench plugins`: what the registries hold (attacks, algorithms, architectures, defenses), where each came from
(built-in or the plugin's distribution and version), and the plugins that failed to load."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from tabulate import tabulate

from attacks import ATTACKS
from defenses import DEFENSES
from victims.algorithms import ALGORITHMS
from victims.architectures import ARCHITECTURES
from victims.plugins import GROUPS, PluginFailure, PluginWarning
from victims.registry import Registry

REGISTRIES: dict[str, Registry] = {"attack": ATTACKS, "algorithm": ALGORITHMS, "architecture": ARCHITECTURES,
                                   "defense": DEFENSES}


@dataclass(frozen=True)
class Registered:
    kind: str
    name: str
    source: str


def listing() -> tuple[list[Registered], list[PluginFailure]]:
    """Everything registered (built-ins first, per kind) and the plugins that failed to load; the failures
    are returned here, not warned about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        rows = [Registered(kind, name, source) for kind, registry in REGISTRIES.items()
                for name, source in registry.sources().items()]
    return rows, [f for registry in REGISTRIES.values() for f in registry.failures]


def render_listing(rows: list[Registered], failures: list[PluginFailure]) -> str:
    """The listing as text: a table of what is registered, then one line per failed plugin."""
    lines = [tabulate([(r.kind, r.name, r.source) for r in rows], headers=["kind", "name", "from"])]
    lines.append(f"\nplugins register through the entry-point groups {', '.join(GROUPS.values())} "
                 "(docs/plugins.md)")
    if failures:
        lines.append(f"\n{len(failures)} plugin(s) failed to load:")
        lines += [f"  {failure}" for failure in failures]
    return "\n".join(lines)
