"""Where data sets are looked for and where large artifacts are stored."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "BENCH_DATA"
STORE_ENV = "BENCH_STORE"


def data_roots(data_root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data sets: `--data-root`, else `$BENCH_DATA` (os.pathsep-separated)."""
    if data_root is not None:
        raw = [str(data_root)]
    else:
        raw = [p for p in os.environ.get(DATA_ENV, "").split(os.pathsep) if p]
    return [Path(p).expanduser().resolve() for p in raw]


def store_root(store: str | os.PathLike | None = None) -> Path:
    """The ignored artifact store (caches, poisons, checkpoints): `--store`, `$BENCH_STORE`, else ./store."""
    return Path(store or os.environ.get(STORE_ENV) or "store").expanduser().resolve()
