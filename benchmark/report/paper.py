"""The paper's numbers, read from results/paper/<grid>.csv (one row per cell, with its source)."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"


@lru_cache(maxsize=None)
def paper_values(grid: str) -> dict[tuple[str, str], float]:
    """{(row, column): value} of a grid's paper table; empty for `all` and grids without one."""
    if grid == "all":
        return {}
    path = PAPER_DIR / f"{grid}.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {(r["row"], r["column"]): float(r["value"]) for r in csv.DictReader(f)}
