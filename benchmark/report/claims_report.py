"""The published claims (results/claims/<scale>.json) as a Markdown table: what the README shows.

Rendering only: the verdicts and numbers come from `benchmark.report.claims`, which reads the records.
"""
from __future__ import annotations

from typing import Any, Iterator

NAMES = {"simclr": "SimCLR", "moco": "MoCo v2", "byol": "BYOL", "supervised": "supervised",
         "kendall_tau": "tau", "supervised_drop": "supervised drop", "simclr_damage": "SimCLR damage"}


def _name(key: str) -> str:
    return NAMES.get(key, key.replace("_", " "))


def _value(value: Any) -> str:
    return "not measured" if value is None else f"{value:g}"


def _leaves(numbers: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in numbers.items():
        if isinstance(value, dict):
            yield from _leaves(value, path + (key,))
        else:
            yield path + (key,), value


def _measured(claim: dict) -> str:
    """`SimCLR: cp-s 0.349 ± 0.005, cp-c -0.074; MoCo v2: ...`; a spread is the one over seeds."""
    spreads, groups = claim.get("spreads", {}), {}
    for path, value in _leaves(claim.get("numbers", {})):
        text = _value(value)
        spread = spreads.get(" ".join(path))
        if spread is not None and value is not None:
            text += f" ± {spread:g}"
        if path[-1] == "cells":  # Kendall's tau: "0.144 over 18 cells"
            groups[path[:-1]][-1] += f" over {value} cells"
            continue
        head, leaf = (path[:-1], path[-1]) if len(path) > 1 else ((), path[0])
        groups.setdefault(head, []).append(text if leaf == "kendall_tau" else f"{_name(leaf)} {text}")
    parts = [(f"{' '.join(_name(k) for k in head)}: " if head else "") + ", ".join(items)
             for head, items in groups.items()]
    return "; ".join(parts + [f"note: {note}" for note in claim.get("notes", [])])


def claims_markdown(published: dict) -> str:
    """A table of claim, verdict and numbers, with a line saying where it comes from."""
    rows = ["| claim | verdict | measured |", "|:--|:--|:--|"]
    for claim in published["claims"]:
        cells = (claim["statement"], f"**{claim['status']}**", _measured(claim))
        rows.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    counts = {s: sum(c["status"] == s for c in published["claims"]) for s in ("holds", "fails", "not measured")}
    summary = (f"{counts['holds']} of {len(published['claims'])} claims hold, {counts['fails']} fail, "
               f"{counts['not measured']} not measured (`bench claims --scale {published['scale']}`; damage = "
               "(clean - poisoned) / (clean - untrained), 1 = as bad as an untrained encoder).")
    return "\n".join(rows + ["", summary]) + "\n"


__all__ = ["claims_markdown"]
