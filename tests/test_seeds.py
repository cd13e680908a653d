"""Seeds: a cell planned once per seed, and the tables, leaderboard and claims showing mean and spread."""
from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from benchmark.dispatch.plan import make_plan
from benchmark.grids import grid_cells
from benchmark.jobs.seeds import DEFAULT_SEED, Measurement, measured, paired, reseed, with_seeds
from benchmark.records import record_path, write_json_atomic
from benchmark.report.claims import check_claims
from benchmark.report.leaderboard import build_leaderboard, render_json, render_markdown
from benchmark.report.tables import build_table, render, render_csv

from test_tables import make_record

SCALE = "smoke"
SEEDS = (DEFAULT_SEED, 7, 8)
CLEAN = {DEFAULT_SEED: 80.0, 7: 82.0, 8: 84.0}  # SimCLR on clean CIFAR-10, one probe number per seed
CPS = {DEFAULT_SEED: 40.0, 7: 50.0}  # CP-S made with SimCLR: two seeds measured
UNTRAINED = 30.0


def cell(row: str, column: str = "cifar10/simclr", grid: str = "effectiveness"):
    return next(c for c in grid_cells(grid, SCALE) if (c.row, c.column) == (row, column))


def write(results: Path, victim, value: float) -> None:
    write_json_atomic(record_path(results, SCALE, victim.key), make_record(victim, {"cifar10": (value, value, value)}))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for seed, value in CLEAN.items():
        write(tmp_path, reseed(cell("none").victim, seed), value)
    for seed, value in CPS.items():
        write(tmp_path, reseed(cell("cp-s").victim, seed), value)
    write(tmp_path, cell("untrained").victim, UNTRAINED)
    write(tmp_path, cell("random").victim, 79.0)  # one seed only
    return tmp_path


def test_measurement_mean_and_sample_spread():
    m = measured({3: 84.0, 1: 80.0, 2: 82.0, 4: None})
    assert m.seeds == (1, 2, 3) and m.mean == pytest.approx(82.0)
    assert m.spread == pytest.approx(statistics.stdev([80.0, 82.0, 84.0]))
    assert Measurement((5.0,), (1,)).spread is None and Measurement().mean is None
    diff = paired(measured({1: 10.0, 2: 12.0, 3: 1.0}), measured({1: 4.0, 2: 5.0}), lambda a, b: a - b)
    assert diff.seeds == (1, 2) and diff.values == (6.0, 7.0)


def test_reseed_moves_victim_and_poison_but_not_an_imported_poison():
    victim = cell("cp-s").victim
    other = reseed(victim, 7)
    assert (other.seed, other.poison.seed) == (7, 7) and other.key != victim.key
    assert reseed(victim, victim.seed) == victim
    imported = with_seeds([c for c in grid_cells("effectiveness", SCALE, ["ext:mine"]) if c.row == "ext:mine"][:1], [7])
    assert imported[0].victim.seed == 7 and imported[0].victim.poison.seed == DEFAULT_SEED
    with pytest.raises(ValueError, match="each seed once"):
        with_seeds([victim], [7, 7])


def test_plan_with_seeds_makes_each_poison_and_victim_per_seed(tmp_path: Path):
    one = make_plan("effectiveness", SCALE, results=tmp_path, store=tmp_path, rows=["cp-s"],
                    columns=["cifar10/simclr"])
    three = make_plan("effectiveness", SCALE, results=tmp_path, store=tmp_path, rows=["cp-s"],
                      columns=["cifar10/simclr"], seeds=list(SEEDS))
    kinds = lambda plan: sorted((j.kind, (j.attack or j.victim).attack if j.kind == "poison" else j.victim.attack)
                                for j in plan.jobs)
    assert len(one.jobs) == 3 and len(three.jobs) == 9  # CP-C (the start), CP-S and the victim, per seed
    assert kinds(three) == sorted(kinds(one) * 3)
    seeds = {(j.kind, (j.attack or j.victim).seed) for j in three.jobs}
    assert seeds == {(k, s) for k in ("poison", "victim") for s in SEEDS}
    for job in three.jobs:  # each CP-S depends on the CP-C of its own seed
        if job.kind == "poison" and job.depends_on:
            start = next(j for j in three.jobs if j.key == job.depends_on)
            assert start.attack.seed == job.attack.seed and start.attack.attack == "cp-c"
    assert {j.key for j in one.jobs} <= {j.key for j in three.jobs}  # the default seed's jobs are the same


def test_table_cell_is_the_mean_with_spread_and_csv_columns(results: Path):
    table = build_table("effectiveness", SCALE, results)
    values = {(c.row, c.column): c for c in table.cells}
    clean, cps, random = (values[(r, "cifar10/simclr")] for r in ("none", "cp-s", "random"))
    assert (clean.ours, clean.seeds) == (pytest.approx(82.0), 3)
    assert clean.spread == pytest.approx(statistics.stdev(CLEAN.values()))
    assert (cps.ours, cps.seeds) == (pytest.approx(45.0), 2)
    assert (random.ours, random.seeds, random.spread) == (pytest.approx(79.0), 1, None)
    md = render([table], "md")
    assert "82.0 ± 2.0 (3 seeds) (paper" in md and "45.0 ± 7.1 (2 seeds) (paper" in md
    assert "79.0 (paper" in md and "mean ± the sample standard deviation" in md
    assert "$\\pm$" in render([table], "latex")
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(render_csv([table])))}
    assert list(rows[("none", "cifar10/simclr")].values())[:6] == ["effectiveness", "none", "cifar10/simclr", "82.00",
                                                                  "91.8", SCALE]
    assert (rows[("none", "cifar10/simclr")]["seeds"], rows[("none", "cifar10/simclr")]["spread"]) == ("3", "2.00")
    assert (rows[("random", "cifar10/simclr")]["seeds"], rows[("random", "cifar10/simclr")]["spread"]) == ("1", "")
    assert (rows[("cp-c", "cifar10/simclr")]["ours"], rows[("cp-c", "cifar10/simclr")]["seeds"]) == ("", "0")


def test_leaderboard_uses_means_and_shows_the_spread(results: Path):
    lb = build_leaderboard(results, SCALE)
    entry = next(e for e in lb.entries if e.attack == "cp-s@simclr" and e.victim.algorithm == "simclr"
                 and e.victim.probe == "cifar10" and e.victim.arch == "resnet18")
    assert (entry.ours, entry.clean, entry.seeds) == (pytest.approx(45.0), pytest.approx(82.0), 2)
    assert entry.damage == pytest.approx((82.0 - 45.0) / (82.0 - UNTRAINED))
    assert "45.0 ± 7.1 (2 seeds)" in render_markdown(lb)
    doc = json.loads(render_json(lb))
    rows = [v for s in doc["incomplete"] for v in s["victims"] if s["attack"] == "cp-s@simclr"]
    assert any(v["seeds"] == 2 and v["spread"] == pytest.approx(7.0711, abs=1e-4) for v in rows)


def test_claims_report_the_spread_and_a_margin_inside_it(results: Path):
    claims = {c.name: c for c in check_claims(results, SCALE)}
    damage = claims["cp_damage"]
    # paired by seed: (80-40)/(80-30) = 0.8 and (82-50)/(82-30) = 0.615; the claimed damage uses the means
    assert damage.numbers["simclr"]["cp-s"] == pytest.approx((82.0 - 45.0) / 52.0, abs=1e-3)
    assert damage.spreads["simclr cp-s"] == pytest.approx(statistics.stdev([40 / 50, 32 / 52]), abs=1e-3)
    assert not damage.notes  # 0.71 is further than 0.13 above 0.4
    write(results, reseed(cell("cp-s").victim, 8), 80.0)  # a third seed that barely hurts: spread now spans 0.4
    damage = {c.name: c for c in check_claims(results, SCALE)}["cp_damage"]
    assert any(n.startswith("simclr cp-s:") and "not settled" in n for n in damage.notes)


def test_bars_show_one_standard_deviation_for_several_seeds(results: Path):
    from matplotlib.container import ErrorbarContainer

    from benchmark.report.figures import bars_figure, pyplot

    table = build_table("effectiveness", SCALE, results)
    fig, _ = bars_figure(table)
    panel = next(ax for ax in fig.axes if ax.get_title() == "cifar10/simclr")
    bars = [c for c in panel.containers if isinstance(c, ErrorbarContainer)]
    segments = [s for c in bars for s in c.lines[2][0].get_segments()]
    spans = sorted((round(float(s[0][1]), 3), round(float(s[1][1]), 3)) for s in segments)
    sd_clean, sd_cps = statistics.stdev(CLEAN.values()), statistics.stdev(CPS.values())
    assert spans == sorted([(round(82 - sd_clean, 3), round(82 + sd_clean, 3)),
                            (round(45 - sd_cps, 3), round(45 + sd_cps, 3))])  # the single-seed cells have none
    other = next(ax for ax in fig.axes if ax.get_title() == "cifar10/moco")
    assert not [c for c in other.containers if isinstance(c, ErrorbarContainer)]
    pyplot().close(fig)


def test_bench_cells_reads_cells_as_the_tables_do(results: Path, capsys):
    from benchmark.dispatch.status import cells_command

    stale = make_record(cell("cp-c").victim, {"cifar10": (60.0, 60.0, 60.0)})
    stale["data"]["stands_for"] = "another data set"  # made on other data: out of date, as the tables say
    write_json_atomic(record_path(results, SCALE, cell("cp-c").victim.key), stale)
    assert cells_command("effectiveness", SCALE, results) == 0
    lines = {tuple(line.split()[1:3]): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "done" in lines[("none", "cifar10/simclr")] and "82.0 ± 2.0 (3 seeds)" in lines[("none", "cifar10/simclr")]
    assert "45.0 ± 7.1 (2 seeds)" in lines[("cp-s", "cifar10/simclr")] and " 79.0 " in lines[("random", "cifar10/simclr")]
    assert "out of date" in lines[("cp-c", "cifar10/simclr")] and "60.0" not in lines[("cp-c", "cifar10/simclr")]
    assert "pending" in lines[("cp-c", "cifar10/moco")]
