"""Tables, agreement and leaderboard from a small hand-made set of records at the smoke scale.

The records are built in tmp_path from FIXTURE (so their file names always follow the current victim keys);
the expected renderings are frozen under tests/fixtures/expected/ (regenerate them, after checking the
change by eye, with CP_BENCH_REGENERATE=1).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.cli.report import add_report_commands
from benchmark.grids import grid_cells
from benchmark.jobs.victim import victim_settings
from benchmark.records import RECORD_FORMAT, record_path, write_json_atomic
from benchmark.report.leaderboard import (build_leaderboard, damage, render_json, render_markdown, shown_victims,
                                          write_leaderboard)
from benchmark.report.tables import (CellValue, agreement, build_table, build_tables, cell_metric, kendall_tau,
                                     latex_escape, render, render_latex)

SCALE = "smoke"
EXPECTED = Path(__file__).parent / "fixtures" / "expected"
REGENERATE = bool(os.environ.get("CP_BENCH_REGENERATE"))
TRAIN = "synthetic (generated), train 320 images, 32 px"
TEST = "synthetic (generated), test 160 images, 32 px"

# (grid, row, column) naming a victim run -> {probed data set: (probe_best, probe_final, knn[, test_accuracy])}
FIXTURE = {
    ("effectiveness", "none", "cifar10/simclr"): {"cifar10": (80.04, 79.61, 75.2), "stl10": (61.27, 60.9, 55.0)},
    ("effectiveness", "cp-s", "cifar10/simclr"): {"cifar10": (39.96, 38.2, 35.1), "stl10": (45.55, 44.0, 40.0)},
    ("effectiveness", "cp-c", "cifar10/simclr"): {"cifar10": (60.0, 59.0, 52.3)},
    ("effectiveness", "random", "cifar10/simclr"): {"cifar10": (76.5, 76.0, 70.0)},
    ("effectiveness", "none", "cifar10/moco"): {"cifar10": (78.25, 77.9, 71.0)},
    ("effectiveness", "cp-s", "cifar10/moco"): {"cifar10": (50.12, 49.0, 44.4)},
    ("effectiveness", "untrained", "cifar10/simclr"): {"cifar10": (30.0, 29.5, 28.0), "stl10": (25.0, 24.0, 22.0)},
    ("effectiveness", "none", "cifar100/simclr"): {"cifar100": (40.3, 39.0, 33.0)},
    ("effectiveness", "cp-s", "cifar100/simclr"): {"cifar100": (20.0, 19.0, 15.0)},
    ("motivation", "none", "supervised"): {"cifar10": (85.0, 84.0, 83.0, 92.33)},
    ("motivation", "ap-t", "supervised"): {"cifar10": (20.1, 19.0, 18.0, 9.87)},
}
CORRUPT = ("effectiveness", "none", "cifar10/byol")  # an unreadable record counts as not measured


def make_record(victim, metrics: dict) -> dict:
    """A minimal valid record (the fields the aggregator reads, the settings of the code of now, plus the
    usual provenance keys)."""
    data = {"train": TRAIN.replace("320", "3200") if victim.dataset == "cifar100" else TRAIN,
            "stands_for": f"{victim.dataset} -> synthetic (32 px, 32/class)",
            "probed": {p: {"train": TRAIN, "test": TEST, "stands_for": f"{p} -> synthetic (32 px, 32/class)"}
                       for p in metrics}}
    out = {}
    for probe, values in metrics.items():
        out[probe] = dict(zip(("probe_best", "probe_final", "knn", "test_accuracy"), values))
        out[probe]["probe_history"] = [values[1], values[0], values[1]]
    return {"format": RECORD_FORMAT, "kind": "victim", "key": victim.key, "scale": SCALE, "victim": victim.to_dict(),
            "attack": victim.attack, "eval": list(metrics), "data": data, "settings": victim_settings(victim),
            "metrics": out,
            "history": [], "timing": {"train_s": 1.0, "eval_s": 1.0, "total_s": 2.0}, "seed": victim.seed}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    for where, metrics in FIXTURE.items():
        victim = cells[where].victim
        write_json_atomic(record_path(tmp_path, SCALE, victim.key), make_record(victim, metrics))
    record_path(tmp_path, SCALE, cells[CORRUPT].victim.key).write_text('{"format": 1, "metr')
    return tmp_path


# Records that complete the CIFAR-10 panel (ResNet-18: simclr, moco, byol, supervised) for three attacks, plus an
# imported poison measured on one victim; with FIXTURE they make `panel_results`.
PANEL = {
    ("effectiveness", "none", "cifar10/byol"): {"cifar10": (75.0, 74.0, 70.0)},  # a valid record over the corrupt one
    ("transfer_algorithms", "ap-t", "simclr"): {"cifar10": (70.0, 69.0, 60.0)},
    ("transfer_algorithms", "ap-t", "moco"): {"cifar10": (60.0, 59.0, 50.0)},
    ("transfer_algorithms", "ap-t", "byol"): {"cifar10": (65.0, 64.0, 55.0)},
    ("transfer_algorithms", "cp-c@simclr", "moco"): {"cifar10": (58.0, 57.0, 50.0)},
    ("transfer_algorithms", "cp-c@simclr", "byol"): {"cifar10": (55.0, 54.0, 50.0)},
    ("transfer_supervised", "cp-c@simclr", "supervised"): {"cifar10": (20.0, 19.0, 18.0, 15.0)},
    ("transfer_algorithms", "ue-s", "simclr"): {"cifar10": (70.0, 69.0, 60.0)},
    ("transfer_algorithms", "ue-s", "moco"): {"cifar10": (65.0, 64.0, 60.0)},
    ("transfer_algorithms", "ue-s", "byol"): {"cifar10": (60.0, 59.0, 55.0)},
    ("transfer_supervised", "ue-s", "supervised"): {"cifar10": (75.0, 74.0, 73.0, 70.0)},
}
EXT, EXT_SHA = "ext:mine", "ab" * 32
EXT_CELL = ("effectiveness", EXT, "cifar10/simclr")
CLEAN = {"simclr": 80.04, "moco": 78.25, "byol": 75.0, "supervised": 92.33}  # the panel's clean records
UNTRAINED = 30.0  # one untrained record: the control's spec does not depend on the algorithm


@pytest.fixture
def panel_results(results: Path) -> Path:
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE, [EXT])}
    for where, metrics in PANEL.items():
        victim = cells[where].victim
        write_json_atomic(record_path(results, SCALE, victim.key), make_record(victim, metrics))
    victim = cells[EXT_CELL].victim
    record = make_record(victim, {"cifar10": (65.0, 64.0, 60.0)})
    record["poison"] = {"key": victim.poison.key, "checksum": "c" * 64, "external": True, "source_sha256": EXT_SHA}
    write_json_atomic(record_path(results, SCALE, victim.key), record)
    return results


def by_hand(attacked: dict[str, float]) -> tuple[float, str, float]:
    """(worst-case damage, its victim, mean damage) over the panel, straight from the records' numbers."""
    damages = {a: (CLEAN[a] - x) / (CLEAN[a] - UNTRAINED) for a, x in attacked.items()}
    worst = min(damages, key=damages.get)
    return damages[worst], worst, sum(damages.values()) / len(damages)


PANEL_NUMBERS = {  # attack -> accuracy left on each panel victim (FIXTURE and PANEL)
    "cp-c@simclr": {"simclr": 60.0, "moco": 58.0, "byol": 55.0, "supervised": 15.0},
    "ap-t": {"simclr": 70.0, "moco": 60.0, "byol": 65.0, "supervised": 9.87},
    "ue-s": {"simclr": 70.0, "moco": 65.0, "byol": 60.0, "supervised": 70.0},
}


def check_expected(name: str, text: str) -> None:
    path = EXPECTED / name
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from tests/fixtures/expected/{name}"


def bench(argv: list[str]) -> int:
    """Run a sub-command through a parser wired as benchmark/cli/main.py wires it (every sub-parser gets the
    global options through `parents`)."""
    parser = argparse.ArgumentParser(prog="bench")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-root", default=argparse.SUPPRESS)
    common.add_argument("--store", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **k: add_parser(*a, parents=[common], **k)
    add_report_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


# ---------------------------------------------------------------------------------------------- tables

def test_cell_metric_protocols():
    sup = {"victim": {"algorithm": "supervised"}, "metrics": {"cifar10": {"probe_best": 1.0, "probe_final": 2.0,
                                                                          "knn": 3.0, "test_accuracy": 4.0}}}
    assert [cell_metric(sup, "cifar10", m) for m in ("probe_best", "probe_final", "knn")] == [4.0, 4.0, 4.0]
    con = {"victim": {"algorithm": "simclr"}, "metrics": sup["metrics"]}
    assert [cell_metric(con, "cifar10", m) for m in ("probe_best", "probe_final", "knn")] == [1.0, 2.0, 3.0]
    assert cell_metric(con, "stl10") is None and cell_metric(None, "cifar10") is None
    with pytest.raises(ValueError, match="unknown metric"):
        cell_metric(con, "cifar10", "top5")


def test_table_values_by_hand(results):
    t = build_table("effectiveness", SCALE, results)
    cells = {(c.row, c.column): c for c in t.cells}
    assert t.rows == ["none", "random", "cp-s", "cp-c", "untrained"]
    assert cells[("cp-s", "cifar10/simclr")] == CellValue(
        "effectiveness", "cp-s", "cifar10/simclr", 39.96, 44.9, (f"cifar10 -> {TRAIN}",))
    assert cells[("none", "cifar10/byol")].ours is None  # corrupt record
    assert [cells[("untrained", c)].ours for c in t.columns] == [30.0] * 3 + [None] * 4
    assert cells[("untrained", "cifar10/moco")].paper is None
    knn = {(c.row, c.column): c.ours for c in build_table("effectiveness", SCALE, results, "knn").cells}
    assert knn[("cp-s", "cifar10/simclr")] == 35.1
    # transfer_supervised has no control row in its grid: it is derived, last, from each column's victim
    ts = build_table("transfer_supervised", SCALE, results)
    assert ts.rows[-1] == "untrained" and [c.ours for c in ts.cells if c.row == "untrained"] == [30.0, 30.0]
    assert {(c.row, c.column): c.ours for c in ts.cells}[("ap-t", "supervised")] == 9.87  # test accuracy


def test_rendered_tables_equal_the_expected_files(results, tmp_path, capsys):
    out = tmp_path / "out"
    assert bench(["tables", "--grid", "all", "--scale", SCALE, "--results", str(results), "--format", "csv",
                  "--out", str(out)]) == 0
    check_expected("all.csv", capsys.readouterr().out)
    for grid in ("effectiveness", "transfer_supervised", "downstream"):
        check_expected(f"{grid}.md", (out / f"{grid}.md").read_text())
        check_expected(f"{grid}.tex", (out / f"{grid}.tex").read_text())
    check_expected("summary.csv", (out / "summary.csv").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{g}.{e}" for g in ("effectiveness", "downstream", "architectures", "transfer_supervised",
                               "transfer_algorithms", "motivation", "defenses", "ratio", "leaderboard", "beyond")
         for e in ("md", "tex", "csv")] + ["summary.csv"])


def test_tables_command_prints_and_writes_under_results(results, capsys):
    folder = results / "tables" / SCALE
    for fmt in ("md", "csv", "latex"):  # printing only prints
        assert bench(["tables", "--grid", "effectiveness", "--scale", SCALE, "--results", str(results),
                      "--format", fmt]) == 0
        assert "wrote" not in capsys.readouterr().out and not folder.exists()
    assert bench(["tables", "--grid", "effectiveness", "--scale", SCALE, "--results", str(results), "--write"]) == 0
    printed = capsys.readouterr().out
    md = (folder / "effectiveness.md").read_text()
    assert printed.startswith(md) and "wrote 4 files" in printed
    assert sorted(p.name for p in folder.iterdir()) == ["effectiveness.csv", "effectiveness.md",
                                                        "effectiveness.tex", "summary.csv"]  # all formats together
    assert "| cp-s      |  40.0 (paper 44.9, -4.9) |" in md
    assert "Data: cifar10 -> synthetic (generated), train 320 images, 32 px; cifar100 -> synthetic" in md
    assert "over 8 measured cells: Kendall's tau 0.91, mean |ours - paper| 10.1 points." in md  # see below
    assert (folder / "effectiveness.tex").read_text() == render(build_tables("effectiveness", SCALE, results),
                                                                "latex")
    # a second grid adds its row to summary.csv, the first stays
    assert bench(["tables", "--grid", "motivation", "--scale", SCALE, "--results", str(results), "--format", "html",
                  "--write"]) == 0
    assert "<caption>Table motivation, scale smoke." in capsys.readouterr().out
    summary = (folder / "summary.csv").read_text().splitlines()
    assert summary[0] == "grid,cells_measured,kendall_tau,mean_abs_diff,scale"
    assert [line.split(",")[0] for line in summary[1:]] == ["effectiveness", "motivation"]
    # none/supervised, none/simclr, none/moco, ap-t/supervised: C = 5, D = 0, one tie in the paper (91.8)
    assert summary[2] == "motivation,4,0.9129,7.7875,smoke"  # (2.27 + 11.76 + 13.55 + 3.57) / 4


def test_effectiveness_agreement_by_hand(results):
    a = build_table("effectiveness", SCALE, results).agreement
    ours = [80.04, 78.25, 40.3, 76.5, 39.96, 50.12, 20.0, 60.0]  # none x3, random, cp-s x3, cp-c
    paper = [91.8, 91.8, 63.6, 90.4, 44.9, 55.1, 19.9, 68.0]
    assert a.cells_measured == 8
    assert a.mean_abs_diff == pytest.approx(sum(abs(o - p) for o, p in zip(ours, paper)) / 8)
    assert a.mean_abs_diff == pytest.approx(80.53 / 8)
    # 28 pairs: the paper ties once (91.8, 91.8); one pair is discordant: cp-s/cifar10/moco (50.12, paper 55.1)
    # against none/cifar100/simclr (40.3, paper 63.6); the other 26 are concordant
    assert a.kendall_tau == pytest.approx((26 - 1) / (27 * 28) ** 0.5)


def test_latex_escapes_and_is_a_table_environment(results):
    assert latex_escape("a_b & 50% #1 {x} ~ ^ \\ cifar10->stl10") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} cifar10$\to$stl10")
    tex = render_latex(build_table("downstream", SCALE, results))
    assert tex.startswith("\\begin{table}") and tex.endswith("\\end{table}\n")
    assert all(tok in tex for tok in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "cifar10$\\to$stl10"))
    assert "->" not in tex and "_" not in tex.replace("\\_", "")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed on this machine")
def test_latex_compiles(results, tmp_path):
    tables = build_tables("all", SCALE, results)
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
           + "\n".join(render_latex(t) for t in tables) + "\\end{document}\n")
    (tmp_path / "doc.tex").write_text(doc)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


# ---------------------------------------------------------------------------------------------- agreement

def test_kendall_tau():
    values = [91.8, 90.4, 44.9, 68.0, 63.6, 58.5, 19.9, 34.7, 91.8]  # one tie
    assert kendall_tau(values, values) == pytest.approx(1.0)
    assert kendall_tau(values, [200 - v for v in values]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173)  # scipy's docs
    assert kendall_tau([1.0], [2.0]) is None and kendall_tau([], []) is None
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None


def test_agreement_of_a_table_against_itself_and_reversed():
    cells = [CellValue("g", f"r{i}", "c", None, v) for i, v in enumerate([91.8, 44.9, 68.0, 19.9, 91.8, 55.1])]
    same = agreement([CellValue(c.grid, c.row, c.column, c.paper, c.paper) for c in cells])
    assert (same.cells_measured, same.kendall_tau, same.mean_abs_diff) == (6, pytest.approx(1.0), 0.0)
    flipped = agreement([CellValue(c.grid, c.row, c.column, 120 - c.paper, c.paper) for c in cells])
    assert flipped.kendall_tau == pytest.approx(-1.0)
    one = agreement(cells[:1] + [CellValue("g", "x", "c", 50.0, 44.9)])
    assert (one.cells_measured, one.kendall_tau, one.mean_abs_diff) == (1, None, pytest.approx(5.1))
    assert agreement(cells) == type(one)(0, None, None)


# ---------------------------------------------------------------------------------------------- leaderboard

def test_damage_by_hand():
    assert damage(80.0, 40.0, 30.0) == pytest.approx(0.8)
    assert damage(80.0, 80.0, 30.0) == 0.0
    assert damage(80.0, 20.0, 30.0) == pytest.approx(1.2)  # below the random-weights floor
    assert damage(30.0, 20.0, 30.0) is None and damage(80.0, None, 30.0) is None and damage(80.0, 40.0, None) is None


def test_leaderboard_by_hand(results):
    lb = build_leaderboard(results, SCALE)
    by = {(e.attack, e.victim.label): e for e in lb.entries}
    e = by[("cp-s@simclr", "simclr/resnet18 cifar10->cifar10")]  # effectiveness and transfer_algorithms: one entry
    assert (e.ours, e.paper, e.clean, e.untrained, e.paper_clean) == (39.96, 44.9, 80.04, 30.0, 91.8)
    assert e.damage == pytest.approx((80.04 - 39.96) / (80.04 - 30.0))
    cps = next(c for c in grid_cells("effectiveness", SCALE) if (c.row, c.column) == ("cp-s", "cifar10/simclr"))
    assert (e.key, e.data) == (cps.victim.key, (f"cifar10 -> {TRAIN}",))
    assert len(lb.entries) == len(set(by))  # deduplicated
    assert by[("cp-s@simclr", "simclr/resnet18 cifar100->cifar100")].damage is None  # no untrained record
    ap = by[("ap-t", "supervised/resnet18 cifar10->cifar10")]
    assert (ap.ours, ap.clean, ap.paper) == (9.87, 92.33, 8.7)  # the tables' 8.7 (figure 1 says 6.3)
    # no attack has the whole CIFAR-10 panel: none is ranked (the old ranking put ap-t first on one supervised
    # victim and cp-s@moco third on one MoCo victim); each is listed with what it misses
    assert lb.standings() == []
    incomplete = {s.attack: (len(s.entries), s.missing) for s in lb.incomplete()}
    assert incomplete["cp-s@simclr"] == (1, ("moco not measured", "byol not measured", "supervised not measured"))
    assert incomplete["cp-s@moco"] == (1, ("simclr not measured", "byol not measured", "supervised not measured"))
    assert incomplete["ap-t"] == (1, ("simclr not measured", "moco not measured", "byol not measured"))
    assert "cp-s@byol" not in incomplete  # measured nowhere: "not measured yet"
    assert [s.attack for s in lb.incomplete()][:1] == ["ap-t"]  # most measured first, then by name


def test_leaderboard_ranks_on_the_panel_by_worst_case_damage_then_mean(panel_results):
    lb = build_leaderboard(panel_results, SCALE)
    expected = sorted(((*by_hand(x), a) for a, x in PANEL_NUMBERS.items()), key=lambda t: (-t[0], -t[2]))
    got = [(r, s.attack, s.worst_damage, s.worst_victim, s.mean_damage) for r, s in lb.standings()]
    assert [(r, a) for r, a, *_ in got] == [(1, "cp-c@simclr"), (2, "ap-t"), (3, "ue-s")]
    for (rank, attack, worst, victim, mean), (w, v, m, a) in zip(got, expected):
        assert (attack, victim) == (a, v) and worst == pytest.approx(w) and mean == pytest.approx(m)
    # ap-t and ue-s tie on their worst case (70.0 on simclr): the mean damage decides
    assert got[1][2] == pytest.approx(got[2][2]) and got[1][4] > got[2][4]
    byol = next(s for s in lb.incomplete() if s.attack == "cp-s@simclr")
    assert byol.missing == ("moco not measured", "byol not measured", "supervised not measured")
    ext = next(s for s in lb.incomplete() if s.attack == EXT)
    assert ext.external and ext.source_sha256 == EXT_SHA and len(ext.entries) == 1


def test_an_undefined_damage_keeps_an_attack_off_the_ranking(panel_results):
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    record_path(panel_results, SCALE, cells[("effectiveness", "none", "cifar10/byol")].victim.key).unlink()
    lb = build_leaderboard(panel_results, SCALE)
    assert lb.standings() == []
    missing = {s.attack: s.missing for s in lb.incomplete()}
    assert missing["ap-t"] == ("byol: no damage (clean not measured)",)


def test_leaderboard_counts_waiting_victims_only_when_there_are_some(results):
    lb = build_leaderboard(results, SCALE)
    assert "more victims with no measured attack yet" in render_markdown(lb)
    shown = set(shown_victims(lb))
    complete = replace(lb, entries=[e for e in lb.entries if e.victim in shown])
    assert "no measured attack yet" not in render_markdown(complete)


class Rows(HTMLParser):
    """The text of every table row's cells, in all tables (`rows`) and by table id (`tables`)."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.tags, self.tables, self.table = [], None, [], {}, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs).get("id") or f"table{len(self.tables)}", [])
        elif tag == "tr":
            self.rows.append([])
            self.table.append(self.rows[-1])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def parse_rows(text: str) -> Rows:
    parser = Rows()
    parser.feed(text)
    parser.close()
    return parser


def expected_overall_rows() -> list[list[str]]:
    """The overall table's rows, computed from the records' numbers here, not by the leaderboard module."""
    ranked = sorted(((*by_hand(x), a) for a, x in PANEL_NUMBERS.items()), key=lambda t: (-t[0], -t[2]))
    return [["rank", "attack", "worst-case damage", "on victim", "mean damage", "worst-case accuracy", "origin"]] + [
        [str(i + 1), a, f"{w:.2f}", v, f"{m:.2f}", f"{max(PANEL_NUMBERS[a].values()):.1f}", "built-in"]
        for i, (w, v, m, a) in enumerate(ranked)]


def check_page_rows(parser: Rows, lb) -> None:
    """The rendered page's tables against the records (overall) and the leaderboard's entries (per victim)."""
    assert parser.tables["overall-cifar10"] == expected_overall_rows()
    incomplete = parser.tables["incomplete-cifar10"]
    assert incomplete[0] == ["rank", "attack", "measured", "missing", "origin"]
    assert ["-", EXT, "1 of 4", "moco not measured; byol not measured; supervised not measured",
            f"external (sha256 {EXT_SHA[:12]})"] in incomplete
    assert ["-", "cp-s@moco", "1 of 4", "simclr not measured; byol not measured; supervised not measured",
            "built-in"] in incomplete
    for victim in lb.victims():
        for rank, e in lb.ranked(victim):
            assert [str(rank), e.attack, f"{e.ours:.1f}", "-" if e.paper is None else f"{e.paper:.1f}",
                    "-" if e.damage is None else f"{e.damage:.2f}"] in parser.rows
    assert ["-", "cp-c@moco", "-", "60.9", "-"] in parser.rows  # pending on simclr/resnet18 cifar10->cifar10
    assert ["1", EXT, "65.0", "-", f"{(80.04 - 65.0) / (80.04 - 30.0):.2f}"] not in parser.rows  # cp-s@simclr is 1st
    assert ["3", EXT, "65.0", "-", f"{(80.04 - 65.0) / (80.04 - 30.0):.2f}"] in parser.rows


def test_leaderboard_files_and_html(panel_results):
    lb = build_leaderboard(panel_results, SCALE)
    md, page, data = write_leaderboard(lb, panel_results)
    assert [p.name for p in (md, page, data)] == ["leaderboard.md", "leaderboard.html", "leaderboard.json"]
    assert md.read_text() == render_markdown(lb) and data.read_text() == render_json(lb)
    check_expected("leaderboard.md", md.read_text())
    text = page.read_text()
    parser = parse_rows(text)
    assert text.startswith("<!DOCTYPE html>") and {"style", "script", "table"} <= set(parser.tags)
    assert "src=" not in text and "href=" not in text and "http" not in text  # self-contained
    check_page_rows(parser, lb)
    assert ["-", "cp-s@moco", "-", "21.8", "-"] not in parser.rows  # no attack on cifar100/moco: no section


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


def test_leaderboard_page_in_headless_chromium(panel_results, tmp_path):
    """The HTML leaderboard as a real browser shows it: a screenshot, then the rows read back from the page."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    lb = build_leaderboard(panel_results, SCALE)
    _, page, _ = write_leaderboard(lb, panel_results)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400"]
    shot = tmp_path / "leaderboard.png"
    run = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 2400)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # text on a background, not a blank page
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0 and "<table" in dom.stdout, dom.stderr[-2000:]
    check_page_rows(parse_rows(dom.stdout), lb)


def test_leaderboard_json_lists_ranked_entries_with_their_records(panel_results, capsys):
    assert bench(["leaderboard", "--scale", SCALE, "--results", str(panel_results), "--format", "json"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(printed)
    assert printed == (panel_results / "leaderboard.json").read_text()
    assert (doc["format"], doc["scale"], doc["metric"]) == ("cp-bench-leaderboard/1", SCALE, "probe_best")
    assert doc["panels"] == {"cifar10": [f"{a}/resnet18 cifar10->cifar10" for a in CLEAN]}
    ranked = sorted(((*by_hand(x), a) for a, x in PANEL_NUMBERS.items()), key=lambda t: (-t[0], -t[2]))
    assert [(r["rank"], r["attack"], r["worst_victim"]) for r in doc["ranked"]] == \
        [(i + 1, a, v) for i, (_, v, _, a) in enumerate(ranked)]
    first = doc["ranked"][0]
    assert first["worst_damage"] == round(ranked[0][0], 4) and first["external"] is False
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    simclr = first["victims"][0]
    assert simclr["victim"] == {"algorithm": "simclr", "arch": "resnet18", "dataset": "cifar10", "probe": "cifar10"}
    assert simclr["record"] == cells[("effectiveness", "cp-c", "cifar10/simclr")].victim.key
    assert simclr["clean_record"] == cells[("effectiveness", "none", "cifar10/simclr")].victim.key
    assert simclr["untrained_record"] == cells[("effectiveness", "untrained", "cifar10/simclr")].victim.key
    assert (simclr["accuracy"], simclr["clean"], simclr["untrained"]) == (60.0, 80.04, 30.0)
    assert simclr["data"] == [f"cifar10 -> {TRAIN}"]
    for r in doc["ranked"]:  # every record a ranked entry names is a record on disk
        for v in r["victims"]:
            for key in (v["record"], v["clean_record"], v["untrained_record"]):
                assert record_path(panel_results, SCALE, key).is_file()
    ext = next(s for s in doc["incomplete"] if s["attack"] == EXT)
    assert ext["external"] is True and ext["source_sha256"] == EXT_SHA and ext["rank"] is None
    assert ext["victims"][0]["source_sha256"] == EXT_SHA and len(ext["missing"]) == 3


def test_leaderboard_command(results, capsys):
    assert bench(["leaderboard", "--scale", SCALE, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.startswith((results / "leaderboard.md").read_text()) and (results / "leaderboard.html").is_file()
    assert json.loads((results / "leaderboard.json").read_text())["ranked"] == []  # no attack has the panel


def test_a_record_made_with_settings_the_code_no_longer_uses_is_not_shown(tmp_path: Path):
    """The published tables show only records of the code of now: the committed clean SimCLR record is,
    the same record with another learning rate (or older data) is not."""
    import json
    import shutil

    from benchmark.report.tables import build_table
    from conftest import REPO

    key = "029b9b0b9c57710ed4cad8f57a5332f8e6f606106e8082ac2b3f965ed14bcfab"
    folder = tmp_path / "records" / "mini"
    folder.mkdir(parents=True)
    source = REPO / "results" / "records" / "mini" / f"{key[:20]}.json"
    shutil.copy(source, folder / source.name)

    def shown() -> float | None:
        table = build_table("effectiveness", "mini", tmp_path)
        return next(c.ours for c in table.cells if (c.row, c.column) == ("none", "cifar10/simclr"))

    assert shown() is not None
    record = json.loads(source.read_text())
    record["settings"]["train"]["lr"] = 0.25
    (folder / source.name).write_text(json.dumps(record))
    assert shown() is None


def test_the_best_defense_decides_the_robust_ranking(panel_results):
    """ue-s left SimCLR at 70.0 (its worst case, damage 0.20 with ap-t's); grayscale brings SimCLR back to 79.0
    and JPEG its supervised victim to 90.0: after the best defense, ue-s's worst case is its MoCo victim's."""
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    for column, value in (("simclr/grayscale", 79.0), ("simclr/jpeg", 75.0), ("supervised/jpeg", 90.0)):
        victim = cells[("defenses", "ue-s", column)].victim
        metrics = (value, value, value, value) if victim.algorithm == "supervised" else (value, value, value)
        write_json_atomic(record_path(panel_results, SCALE, victim.key), make_record(victim, {"cifar10": metrics}))
    lb = build_leaderboard(panel_results, SCALE)
    ue = next(s for _, s in lb.robust_standings() if s.attack == "ue-s")
    by_victim = {e.victim.algorithm: e for e in ue.entries}
    assert by_victim["simclr"].best_defense == ("grayscale", 79.0)  # the better of its two measured defenses
    assert by_victim["simclr"].robust_damage == pytest.approx((80.04 - 79.0) / (80.04 - 30.0))
    assert by_victim["supervised"].robust_damage == pytest.approx((92.33 - 90.0) / (92.33 - 30.0))
    assert by_victim["moco"].best_defense is None and by_victim["moco"].robust_damage == by_victim["moco"].damage
    assert ue.worst_robust_damage == pytest.approx(min(e.robust_damage for e in ue.entries))
    assert ue.defenses_measured == 3 and ue.worst_damage == pytest.approx((80.04 - 70.0) / 50.04)
    ranked = [s.attack for _, s in lb.robust_standings()]
    assert ranked.index("ue-s") > ranked.index("ap-t")  # the defense moved it down; the plain ranking is kept
    assert [s.attack for _, s in lb.standings()] == ["cp-c@simclr", "ap-t", "ue-s"]
    doc = json.loads(render_json(lb))
    entry = next(v for s in doc["ranked"] if s["attack"] == "ue-s" for v in s["victims"]
                 if v["victim"]["algorithm"] == "simclr")
    assert entry["best_defense"] == "grayscale" and entry["defended"]["jpeg"]["accuracy"] == 75.0
    assert [r["attack"] for r in doc["ranked_after_best_defense"]] == ranked
    median = cells[("defenses", "ue-s", "simclr/median")].victim.key
    assert entry["defended"]["median"] == {"accuracy": None, "record": median}


def test_the_ratio_figure_draws_damage_against_the_poisoned_share(results, tmp_path):
    from benchmark.report.figures import FigureSkipped, ratio_figure, ratio_points, save_figure

    with pytest.raises(FigureSkipped, match="no ratio-grid cell"):
        ratio_figure(ratio_points(tmp_path / "empty", SCALE))
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    for ratio, value in (("0.2", 75.0), ("0.5", 60.0)):  # clean SimCLR 80.04, untrained 30.0 (FIXTURE)
        victim = cells[("ratio", "cp-s@simclr", f"simclr/{ratio}")].victim
        record = make_record(victim, {"cifar10": (value, value, value)})
        write_json_atomic(record_path(results, SCALE, victim.key), record)
    points = ratio_points(results, SCALE)
    assert points[("cp-s@simclr", "simclr")] == [
        (0.2, pytest.approx((80.04 - 75.0) / 50.04)), (0.5, pytest.approx((80.04 - 60.0) / 50.04)),
        (1.0, pytest.approx((80.04 - 39.96) / 50.04))]  # the 1.0 point is the effectiveness table's record
    paths = save_figure(ratio_figure(points), tmp_path, "ratio")
    assert [p.name for p in paths] == ["ratio.png", "ratio.pdf"] and all(p.stat().st_size > 1000 for p in paths)
