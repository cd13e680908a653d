"""`bench perf train` runs end to end (numbers are measured by the command, never asserted here)."""
from __future__ import annotations

from pathlib import Path

from benchmark.cli.main import main


def test_perf_train_prints_both_pipelines_the_network_ceiling_and_the_flop_rate(tmp_path: Path, capsys):
    assert main(["perf", "train", "--scale", "smoke", "--steps", "1", "--workers", "0", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for expected in ("ours (uint8 on device, kornia views)", "reference (PIL transforms + DataLoader)",
                     "ratio ours / reference", "network alone (views made beforehand)",
                     "GFLOP/s measured in this run"):
        assert expected in out
