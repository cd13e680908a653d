"""The example plugin package (tests/plugin_example: the attack 'stripes', the algorithm 'align') installed
with pip into this environment: listed by `bench plugins`, run through a smoke grid on the local executor
(whose job processes load it too) into the table and the leaderboard; uninstalled, it is gone."""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attacks import ATTACKS
from benchmark.cli.main import main
from benchmark.grids import grid_cells
from benchmark.report.tables import build_table
from victims.algorithms import ALGORITHMS
from victims.recipes import MODELS

EXAMPLE = Path(__file__).parent / "plugin_example"
DIST = "cp-bench-example"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("pip") is None, reason="pip is not installed here")]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, capture_output=True, text=True)


def bench_plugins() -> str:
    done = subprocess.run([sys.executable, "-c", "import sys; from benchmark.cli.main import main; sys.exit(main())",
                           "plugins"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def refresh() -> None:
    importlib.invalidate_caches()
    ATTACKS.refresh_plugins()
    ALGORITHMS.refresh_plugins()


def test_the_example_plugin_installed_runs_through_a_smoke_grid_and_uninstalled_is_gone(tmp_path: Path):
    source = tmp_path / "example"
    shutil.copytree(EXAMPLE, source)  # the build leaves its files there, not in the repository
    pip("install", "--no-deps", "--no-build-isolation", str(source))
    try:
        listed = bench_plugins()
        assert re.search(rf"attack +stripes +{DIST} 0\.1\.0", listed)
        assert re.search(rf"algorithm +align +{DIST} 0\.1\.0", listed)
        refresh()
        assert ATTACKS.sources()["stripes"] == ALGORITHMS.sources()["align"] == f"{DIST} 0.1.0"
        cells = grid_cells("effectiveness", "smoke")
        assert "stripes" in {c.row for c in cells} and "cifar10/align" in {c.column for c in cells}
        res = tmp_path / "res"
        assert main(["run", "--grid", "effectiveness", "--scale", "smoke", "--rows", "stripes", "none",
                     "--columns", "cifar10/align", "--cluster", "local", "--store", str(tmp_path / "store"),
                     "--results", str(res)]) == 0
        table = build_table("effectiveness", "smoke", res)
        measured = {(c.row, c.column): c.ours for c in table.cells if c.ours is not None}
        assert set(measured) == {("stripes", "cifar10/align"), ("none", "cifar10/align")}
        assert all(0 <= v <= 100 for v in measured.values())
        records = [json.loads(p.read_text()) for p in (res / "records" / "smoke").glob("*.json")]
        assert {r["victim"]["algorithm"] for r in records} == {"align"}
        assert main(["leaderboard", "--scale", "smoke", "--results", str(res), "--format", "json"]) == 0
        board = json.loads((res / "leaderboard.json").read_text())
        assert [s["attack"] for s in board["incomplete"]] == ["stripes"]  # measured, not on the whole panel
    finally:
        pip("uninstall", "-y", DIST)
        refresh()
        for scale in MODELS.values():
            scale.train.pop("align", None)
            scale.algorithm_settings.pop("align", None)
        for name in [m for m in sys.modules if m == "cp_bench_example" or m.startswith("cp_bench_example.")]:
            del sys.modules[name]
    assert "stripes" not in bench_plugins() and "align" not in bench_plugins()
    assert "stripes" not in ATTACKS and "align" not in ALGORITHMS and not ATTACKS.failures
    cells = grid_cells("effectiveness", "smoke")
    assert "stripes" not in {c.row for c in cells} and not any("align" in c.column for c in cells)
