"""bench claims: the paper's claims computed from records (the fixture records of test_tables)."""
from __future__ import annotations

import json
from pathlib import Path

from test_tables import SCALE, results  # noqa: F401 - the fixture

from benchmark.claims import check_claims
from benchmark.cli import main


def test_claims_from_fixture_records(results: Path):  # noqa: F811
    claims = {c.name: c for c in check_claims(results, SCALE)}
    cp = claims["cp_damage"].numbers["simclr"]
    # clean 80.04, CP-S 39.96, CP-C 60.0, untrained 30.0 -> damage 0.801 and 0.400
    assert cp == {"cp-s": 0.801, "cp-c": 0.4, "stronger": 0.801}
    assert claims["cp_damage"].status == "not measured"  # BYOL has no records
    assert claims["random_noise"].numbers["simclr"] == -3.54 and claims["random_noise"].status == "fails"
    ap = claims["ap-t_motivation"]
    assert ap.numbers["supervised_drop"] == 82.46 and ap.numbers["simclr_damage"] is None
    assert ap.status == "not measured"


def test_write_then_check_passes_and_a_changed_record_fails(results: Path, capsys):  # noqa: F811
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--write"]) == 0
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--check"]) == 0
    record = next(p for p in (results / "records" / SCALE).glob("*.json")
                  if '"attack": "random"' in p.read_text())
    data = json.loads(record.read_text())
    data["metrics"]["cifar10"]["probe_best"] = 79.0  # now within 3 points of clean: the claim changes
    record.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--check"]) == 1
    assert "MISMATCH random_noise" in capsys.readouterr().out
