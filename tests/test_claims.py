"""bench claims: the paper's claims computed from records (the fixture records of test_tables)."""
from __future__ import annotations

import json
from pathlib import Path

from test_tables import SCALE, results  # noqa: F401 - the fixture

from benchmark.cli.main import main
from benchmark.report.claims import check_claims, to_json
from benchmark.report.claims_report import claims_markdown


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
    table = results / "claims" / f"{SCALE}.md"
    table.write_text(table.read_text().replace("**fails**", "**holds**", 1))  # an edited table is caught
    capsys.readouterr()
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--check"]) == 1
    assert "is not the table of the records' claims" in capsys.readouterr().out
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--write"]) == 0
    record = next(p for p in (results / "records" / SCALE).glob("*.json")
                  if '"attack": "random"' in p.read_text())
    data = json.loads(record.read_text())
    data["metrics"]["cifar10"]["probe_best"] = 79.0  # now within 3 points of clean: the claim changes
    record.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["claims", "--scale", SCALE, "--results", str(results), "--check"]) == 1
    assert "MISMATCH random_noise" in capsys.readouterr().out


def test_claims_table_shows_each_verdict_and_number_with_its_seed_spread():
    claims = [{"name": "cp_damage", "statement": "damage >= 0.4", "status": "fails",
               "numbers": {"simclr": {"cp-s": 0.349, "cp-c": None}, "moco": {"cp-s": 0.03}},
               "spreads": {"simclr cp-s": 0.005}, "notes": ["simclr cp-s: inside its spread"]},
              {"name": "kendall_tau", "statement": "tau >= 0.4", "status": "holds",
               "numbers": {"effectiveness": {"kendall_tau": 0.5, "cells": 18}}, "spreads": {}, "notes": []},
              {"name": "random_noise", "statement": "random | noise", "status": "not measured",
               "numbers": {"byol": None}, "spreads": {}, "notes": []}]
    rows = claims_markdown({"scale": "mini", "claims": claims}).splitlines()
    assert rows[2] == ("| damage >= 0.4 | **fails** | SimCLR: cp-s 0.349 ± 0.005, cp-c not measured; "
                       "MoCo v2: cp-s 0.03; note: simclr cp-s: inside its spread |")
    assert rows[3] == "| tau >= 0.4 | **holds** | effectiveness: 0.5 over 18 cells |"
    assert rows[4] == "| random / noise | **not measured** | BYOL not measured |"  # a | would split the cell
    assert "1 of 3 claims hold, 1 fail, 1 not measured" in rows[-1]


def test_claims_table_of_the_fixture_records(results: Path):  # noqa: F811
    table = claims_markdown(to_json(check_claims(results, SCALE), SCALE))
    assert "SimCLR: cp-s 0.801, cp-c 0.4, stronger 0.801" in table
