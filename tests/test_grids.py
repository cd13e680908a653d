"""Grids: every paper cell is a grid cell with the right specs; jobs are shared; paper CSVs match REFERENCE."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.grids import GRIDS, distinct_jobs, grid_cells
from defenses import DEFENSES
from benchmark.report.paper import paper_values
from victims.registry import UnknownNameError

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "REFERENCE.md"
TABLES = ["effectiveness", "downstream", "architectures", "transfer_supervised", "transfer_algorithms", "motivation"]


def test_grid_names_and_unknown_grid():
    assert GRIDS.names() == TABLES + ["defenses", "ratio", "leaderboard", "beyond", "all"]
    with pytest.raises(UnknownNameError, match="valid grids: effectiveness, downstream"):
        grid_cells("table9", "mini")


@pytest.mark.parametrize("grid", TABLES)
def test_every_paper_cell_is_a_grid_cell_plus_the_control_row(grid):
    cells = grid_cells(grid, "mini")
    keys = [(c.row, c.column) for c in cells]
    assert len(keys) == len(set(keys))
    paper = paper_values(grid)
    assert set(paper) <= set(keys)
    assert {k for k in keys if k not in paper} == {k for k in keys if k[0] == "untrained"}


def test_the_successors_are_measured_in_the_beyond_grid_not_in_the_paper_s_tables():
    """SimSiam and Barlow Twins are registered (a victim of any grid) but columns of `beyond` only; there every
    victim sees the same SimCLR-made poisons, and the paper column's cells are grid cells."""
    in_tables = {c.victim.algorithm for g in TABLES for c in grid_cells(g, "mini")}
    assert not {"simsiam", "barlow_twins"} & in_tables
    cells = grid_cells("beyond", "mini")
    assert [c for c in cells if c.row == "none"][0].column == "supervised"
    assert {c.column for c in cells} == {"supervised", "simclr", "moco", "byol", "simsiam", "barlow_twins"}
    poisons = {c.victim.poison.key for c in cells if c.row == "cp-s@simclr"}
    assert len(poisons) == 1 and all(c.victim.poison.algorithm == "simclr" for c in cells if c.row == "cp-c@simclr")
    assert set(paper_values("beyond")) <= {(c.row, c.column) for c in cells}


def test_cells_map_to_the_right_specs():
    by_key = {(c.grid, c.row, c.column): c for c in grid_cells("all", "mini")}
    cell = by_key[("transfer_algorithms", "cp-s@moco", "byol")]  # MoCo-made CP-S against a BYOL victim
    assert cell.victim.algorithm == "byol" and cell.victim.poison.attack == "cp-s"
    assert cell.victim.poison.algorithm == "moco" and cell.probe == "cifar10"
    cell = by_key[("effectiveness", "cp-c", "cifar100/byol")]  # the attacker's algorithm is the victim's
    assert cell.victim.dataset == "cifar100" and cell.victim.poison.algorithm == "byol"
    cell = by_key[("downstream", "cp-s", "imagenet100->stl10")]
    assert cell.victim.dataset == "imagenet100" and cell.probe == "stl10" and cell.victim.algorithm == "simclr"
    cell = by_key[("architectures", "cp-c", "vgg19")]  # poison made with ResNet-18, victim VGG-19
    assert cell.victim.arch == "vgg19" and cell.victim.poison.arch == "resnet18"
    cell = by_key[("motivation", "ap-t", "supervised")]
    assert cell.victim.algorithm == "supervised" and cell.victim.poison.algorithm == "supervised"
    assert by_key[("effectiveness", "none", "cifar10/simclr")].victim.poison is None
    control = by_key[("architectures", "untrained", "mobilenetv2")].victim
    assert control.algorithm == "untrained" and control.arch == "mobilenetv2" and control.poison is None


def test_the_same_experiment_in_several_tables_is_one_job():
    cells = grid_cells("all", "mini")
    _, victims = distinct_jobs(cells)
    clean_simclr = {c.victim.key for c in cells if c.row == "none" and c.victim.algorithm == "simclr"
                    and c.victim.dataset == "cifar10" and c.victim.arch == "resnet18" and c.victim.defense is None}
    assert len(clean_simclr) == 1  # effectiveness, downstream (x3 probes), architectures, motivation, defenses
    cps = [c for c in cells if c.victim.poison is not None and c.victim.poison.attack == "cp-s"
           and c.victim.dataset == "cifar10" and c.victim.algorithm == "simclr" and c.victim.arch == "resnet18"
           and c.victim.poison.algorithm == "simclr"]
    undefended = [c for c in cps if c.victim.defense is None and c.victim.poison_ratio == 1]
    assert {c.grid for c in undefended} == {"effectiveness", "downstream", "architectures", "transfer_algorithms",
                                            "defenses", "ratio", "leaderboard", "beyond"}  # defense none, ratio 1.0
    assert len({c.victim.key for c in undefended}) == 1
    assert len({c.victim.key for c in cps}) == len(DEFENSES.names()) + 3  # each defense; ratios 0.2, 0.5, 0.8
    assert len(victims) < len(cells)
    assert grid_cells("effectiveness", "mini")[0].victim.key != grid_cells("effectiveness", "smoke")[0].victim.key


def _reference_tables() -> dict[str, list[list[float]]]:
    text = REFERENCE.read_text()
    tables = {}
    for match in re.finditer(r'### (?:Table|Figure) "(\w+)"[^\n]*\n(?:[^|\n][^\n]*\n)*((?:\|.*\n)+)', text):
        rows = [line for line in match.group(2).splitlines() if not set(line) <= set("|- ")][1:]
        tables[match.group(1)] = [[float(x) for x in re.findall(r"\|\s*([\d.]+)\s*(?=\|)", line)] for line in rows]
    return tables


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/REFERENCE.md not beside the repository")
def test_paper_csvs_reproduce_every_number_of_the_reference():
    tables = _reference_tables()
    assert sorted(tables) == sorted(TABLES)
    for grid in TABLES:
        reference = [v for row in tables[grid] for v in row]
        ours = list(paper_values(grid).values())  # CSV order: rows, then columns, as in the paper
        assert ours == reference, grid


def test_the_defenses_grid_crosses_every_defense_with_each_attack_on_simclr_and_supervised():
    cells = {(c.row, c.column): c for c in grid_cells("defenses", "mini")}
    rows = {r for r, _ in cells}
    assert rows == {"none", "random", "cp-s@simclr", "cp-c@simclr", "ue-s", "ap-t"}
    assert {col for _, col in cells} == {f"{v}/{d}" for v in ("simclr", "supervised") for d in DEFENSES.names()}
    jpeg = cells[("cp-s@simclr", "supervised/jpeg")].victim
    assert (jpeg.algorithm, jpeg.defense.name, jpeg.poison.attack, jpeg.poison.algorithm) == \
        ("supervised", "jpeg", "cp-s", "simclr")
    assert cells[("none", "simclr/grayscale")].victim.poison is None  # what the defense costs a clean victim
    by_key = {(c.grid, c.row, c.column): c for c in grid_cells("all", "mini")}
    assert cells[("cp-c@simclr", "simclr/none")].victim.key == \
        by_key[("transfer_algorithms", "cp-c@simclr", "simclr")].victim.key  # undefended: the same record


def test_the_ratio_grid_poisons_a_share_and_its_whole_column_is_the_other_tables_cell():
    cells = {(c.row, c.column): c for c in grid_cells("ratio", "mini")}
    assert {col for _, col in cells} == {f"{v}/{r}" for v in ("simclr", "supervised") for r in ("0.2", "0.5", "0.8", "1")}
    assert cells[("ue-s", "simclr/0.5")].victim.poison_ratio == 0.5
    by_key = {(c.grid, c.row, c.column): c for c in grid_cells("all", "mini")}
    assert cells[("ue-s", "supervised/1")].victim.key == by_key[("transfer_supervised", "ue-s", "supervised")].victim.key


def test_the_leaderboard_grid_completes_the_panel_for_every_ranked_attack():
    cells = {(c.row, c.column): c for c in grid_cells("leaderboard", "mini")}
    rows = {r for r, _ in cells}
    assert {"random", "cp-s@simclr", "cp-s@moco", "cp-s@byol", "cp-c@byol", "ue-s", "ap-t"} <= rows
    assert {col for _, col in cells} == {"simclr", "moco", "byol", "supervised"}
    victim = cells[("cp-s@moco", "supervised")].victim  # the paper's headline attack on the supervised victim
    assert (victim.algorithm, victim.poison.attack, victim.poison.algorithm) == ("supervised", "cp-s", "moco")
    others = {c.victim.key for c in grid_cells("all", "mini") if c.grid != "leaderboard"}
    new = {(r, col) for (r, col), c in cells.items() if c.victim.key not in others}
    # CP-S made with SimCLR and random noise on the supervised victim are the defenses grid's `none` column
    assert new == {("cp-s@moco", "supervised"), ("cp-s@byol", "supervised")}
