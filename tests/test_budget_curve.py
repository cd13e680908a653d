"""benchmark/scripts/budget_curve.py at the smoke scale: a staged run (--until) releases and tests the early
epochs, the same command without it goes on to the rest, each point's damage is measured against the scale's
clean and untrained records, and the figure is drawn from the points."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from benchmark.cli.main import main as bench
from benchmark.report.leaderboard import damage

REPO = Path(__file__).resolve().parents[1]


def script():
    spec = importlib.util.spec_from_file_location("budget_curve", REPO / "benchmark" / "scripts" / "budget_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_staged_budget_curve_gives_every_point_with_its_damage_and_a_figure(tmp_path: Path, monkeypatch, capsys):
    store, results = tmp_path / "store", tmp_path / "results"
    assert bench(["run", "--grid", "effectiveness", "--scale", "smoke", "--rows", "none", "untrained", "--columns",
                  "cifar10/simclr", "--cluster", "debug", "--store", str(store), "--results", str(results)]) == 0
    curve = script()
    base = ["budget_curve.py", "run", "--scale", "smoke", "--init", "random", "--epochs", "3", "--release", "1", "3",
            "--store", str(store), "--results", str(results)]
    monkeypatch.setattr(sys, "argv", base + ["--until", "2"])
    curve.main()
    points = sorted((results / "budget" / "smoke").glob("*.json"))
    assert [p.name[-11:] for p in points] == ["at0001.json"]  # epoch 3 is not made yet
    monkeypatch.setattr(sys, "argv", base)
    curve.main()
    out = capsys.readouterr().out
    assert "resumed from the checkpoint of epoch 1" in out  # the CP run went on from its stop
    points = [json.loads(p.read_text()) for p in sorted((results / "budget" / "smoke").glob("*.json"))]
    assert [p["epoch"] for p in points] == [1, 3]
    records = [json.loads(p.read_text()) for p in (results / "records" / "smoke").glob("*.json")]
    records = {r["key"]: r for r in records}
    for point in points:
        clean, untrained = records[point["clean_record"]], records[point["untrained_record"]]
        assert clean["victim"]["algorithm"] == "simclr" and untrained["victim"]["algorithm"] == "untrained"
        assert point["clean"] == clean["metrics"]["cifar10"]["probe_best"]
        assert point["untrained"] == untrained["metrics"]["cifar10"]["probe_best"]
        # (the smoke networks learn nothing, so clean may be below untrained and the damage undefined: None)
        assert point["damage"] == damage(point["clean"], point["probe_best"], point["untrained"])
        assert point["attacker"]["model_loss"] > 0 and point["clean_victim_final_loss"] > 0
    assert points[0]["poison_checksum"] != points[1]["poison_checksum"]
    figure = ["budget_curve.py", "figure", "--scale", "smoke", "--results", str(results)]
    if any(p["damage"] is None for p in points):  # drawn from points with a damage only
        monkeypatch.setattr(sys, "argv", figure)
        with pytest.raises(SystemExit, match="no budget points with a damage"):
            curve.main()
        for path, damaged in zip(sorted((results / "budget" / "smoke").glob("*.json")), (0.1, 0.3)):
            path.write_text(json.dumps({**json.loads(path.read_text()), "damage": damaged}))
    monkeypatch.setattr(sys, "argv", figure)
    curve.main()
    assert (results / "figures" / "budget_curve.png").stat().st_size > 0
