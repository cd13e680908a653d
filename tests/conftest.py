"""Shared fixtures: the real data under BENCH_DATA (../shared/data) and a per-session artifact store."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    candidates = [os.environ.get("BENCH_DATA"), str(REPO.parent / "shared" / "data")]
    for c in candidates:
        if c and (Path(c) / "cifar10" / "train").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets; skipped with a reason only where they are absent (CI always has them)."""
    path = _shared_data()
    if path is None:
        pytest.skip("real data not found: set BENCH_DATA to ../shared/data (cifar10/ folder with train/ and test/)")
    return path


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact store for the whole test session, so each real data set is decoded once."""
    return tmp_path_factory.mktemp("store")


def pytest_configure(config: pytest.Config) -> None:
    """Tests run small models: one intra-op thread avoids oversubscribing a small shared machine."""
    import torch

    torch.set_num_threads(1)
