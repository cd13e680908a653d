"""Every paper table as a grid: each (row, column) cell maps to an attack, a victim and a probed data set.

Row and column keys follow DESIGN.md: the row is the attack (`cp-c@moco` where the table varies the
attacker's algorithm); the column is `dataset/algorithm` (effectiveness), `poisoned->probed` (downstream),
the architecture (architectures) or the victim's algorithm (transfer tables, motivation). The `untrained`
row is the control (random weights, probed the same way; no paper value).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from tabulate import tabulate

from attacks import ATTACKS
from attacks.external import external_spec, is_external
from attacks.spec import AttackSpec
from victims.algorithms import contrastive_algorithms, table_algorithms
from victims.registry import Registry

from defenses import DEFENSES, DefenseSpec

from .specs import CONTROL, VictimSpec

ARCH_COLUMNS = ("vgg19", "resnet18", "resnet50", "densenet121", "mobilenetv2")
BASELINE_ROWS = ("ap-t", "ue-s")  # the transfer tables' "adversarial poisoning" and "unlearnable examples"


def registered_rows(grid: str) -> list[str]:
    """Rows for the registered attacks that ask for one in `grid` beyond the paper's (a new attack)."""
    return [name for name in ATTACKS if grid in ATTACKS.get(name).extra_rows_in]


@dataclass(frozen=True)
class Cell:
    """One number of one table."""

    grid: str
    row: str
    column: str
    victim: VictimSpec
    probe: str  # the data set the frozen encoder is probed on

    @property
    def attack(self) -> str:
        return self.row.split("@")[0]


def attack_spec(row: str, dataset: str, victim_algorithm: str, scale: str, arch: str = "resnet18") -> AttackSpec | None:
    """The poison of a row: `none` -> clean; `cp-s@moco` -> CP-S made with MoCo; a bare `cp-s` is made
    with the victim's own algorithm; the attack's class says which surrogate it trains (an attack not
    registered here gets a spec without one, and its cells are skipped by the plan); `ext:NAME` is an
    imported poison."""
    if is_external(row):
        return external_spec(row, dataset, scale)
    attack, _, algorithm = row.partition("@")
    if attack in ("none", CONTROL):
        return None
    if attack not in ATTACKS:
        return AttackSpec(attack, dataset, scale=scale)
    return ATTACKS.get(attack).spec_for(dataset, algorithm or victim_algorithm, arch, scale)


def victim_cell(grid: str, row: str, column: str, *, algorithm: str, dataset: str, scale: str,
                arch: str = "resnet18", probe: str | None = None, defense: str = "none",
                poison_ratio: float = 1.0) -> Cell:
    victim_algorithm = CONTROL if row == CONTROL else algorithm
    poison = attack_spec(row, dataset, algorithm, scale)
    return Cell(grid, row, column, VictimSpec(victim_algorithm, arch, dataset, poison, scale,
                                              defense=None if defense == "none" else DefenseSpec(defense),
                                              poison_ratio=poison_ratio if poison is not None else 1.0),
                probe or dataset)


GRIDS: Registry[Callable[[str], list[Cell]]] = Registry("grid")


@GRIDS.register("effectiveness")
def effectiveness(scale: str) -> list[Cell]:
    columns = [(d, a) for d in ("cifar10", "cifar100") for a in table_algorithms()] + [("imagenet100", "simclr")]
    rows = ["none", "random", "cp-s", "cp-c", *registered_rows("effectiveness"), CONTROL]
    return [victim_cell("effectiveness", row, f"{d}/{a}", algorithm=a, dataset=d, scale=scale)
            for row in rows for d, a in columns]


@GRIDS.register("downstream")
def downstream(scale: str) -> list[Cell]:
    pairs = [("cifar10", p) for p in ("cifar10", "cifar100", "stl10")] + \
        [("imagenet100", p) for p in ("imagenet100", "cifar10", "stl10")]
    rows = ["none", "cp-s", "cp-c", *registered_rows("downstream"), CONTROL]
    return [victim_cell("downstream", row, f"{d}->{p}", algorithm="simclr", dataset=d, scale=scale, probe=p)
            for row in rows for d, p in pairs]


@GRIDS.register("architectures")
def architectures(scale: str) -> list[Cell]:
    """The poison is made with ResNet-18 (attack_spec's default); the victim's architecture varies."""
    rows = ["none", "cp-s", "cp-c", *registered_rows("architectures"), CONTROL]
    return [victim_cell("architectures", row, arch, algorithm="simclr", dataset="cifar10", scale=scale, arch=arch)
            for row in rows for arch in ARCH_COLUMNS]


@GRIDS.register("transfer_supervised")
def transfer_supervised(scale: str) -> list[Cell]:
    rows = [*BASELINE_ROWS, *(f"cp-c@{a}" for a in table_algorithms()), *registered_rows("transfer_supervised")]
    return [victim_cell("transfer_supervised", row, victim, algorithm=victim, dataset="cifar10", scale=scale)
            for row in rows for victim in ("supervised", "simclr")]


@GRIDS.register("transfer_algorithms")
def transfer_algorithms(scale: str) -> list[Cell]:
    algorithms = table_algorithms()
    rows = [*BASELINE_ROWS, *(f"{k}@{a}" for k in ("cp-s", "cp-c") for a in algorithms),
            *registered_rows("transfer_algorithms"), CONTROL]
    return [victim_cell("transfer_algorithms", row, victim, algorithm=victim, dataset="cifar10", scale=scale)
            for row in rows for victim in algorithms]


@GRIDS.register("motivation")
def motivation(scale: str) -> list[Cell]:
    return [victim_cell("motivation", row, victim, algorithm=victim, dataset="cifar10", scale=scale)
            for row in ("none", "ap-t", *registered_rows("motivation"), CONTROL)
            for victim in ("supervised", *table_algorithms())]


def surrogate_row(name: str, algorithm: str = "simclr") -> str:
    """An attack's row where the victim may be supervised: a contrastive-surrogate attack made with `algorithm`
    (`cp-s@simclr`), any other by its name."""
    return f"{name}@{algorithm}" if name in ATTACKS and ATTACKS.get(name).surrogate == "contrastive" else name


DEFENSE_VICTIMS = ("simclr", "supervised")
DEFENSE_ROWS = ("none", "random", "cp-s", "cp-c", "ue-s", "ap-t")


@GRIDS.register("defenses")
def defenses(scale: str) -> list[Cell]:
    """Every registered defense (`none` included: the undefended cells, shared with the other tables) against
    each attack, on SimCLR and the supervised victim; column `victim/defense` (e.g. `simclr/jpeg`). The
    `none` row is what the defense costs a clean victim (docs/defenses.md)."""
    rows = [surrogate_row(r) for r in dict.fromkeys([*DEFENSE_ROWS, *registered_rows("defenses")])]
    return [victim_cell("defenses", row, f"{victim}/{defense}", algorithm=victim, dataset="cifar10", scale=scale,
                        defense=defense)
            for row in rows for victim in DEFENSE_VICTIMS for defense in DEFENSES.names()]


RATIOS = (0.2, 0.5, 0.8, 1.0)
RATIO_ROWS = ("cp-s", "cp-c", "ue-s", "ap-t")


@GRIDS.register("ratio")
def ratio(scale: str) -> list[Cell]:
    """Partial poisoning: only a share of the training set poisoned (a seeded class-balanced subset); column
    `victim/ratio` (e.g. `simclr/0.5`); the 1.0 column is the whole-set cell of the other tables."""
    rows = [surrogate_row(r) for r in dict.fromkeys([*RATIO_ROWS, *registered_rows("ratio")])]
    return [victim_cell("ratio", row, f"{victim}/{r:g}", algorithm=victim, dataset="cifar10", scale=scale,
                        poison_ratio=r)
            for row in rows for victim in DEFENSE_VICTIMS for r in RATIOS]


@GRIDS.register("leaderboard")
def leaderboard(scale: str) -> list[Cell]:
    """Every ranked attack on every victim of the leaderboard's CIFAR-10 panel (SimCLR, MoCo v2, BYOL,
    supervised; ResNet-18), so that none is left incomplete for want of a cell: most cells are other tables'
    (shared records); the new ones are CP-S (each surrogate) and random noise on the supervised victim. An
    attack joins with `extra_rows_in` naming `effectiveness` (a paper table too) or `leaderboard` (ranked only)."""
    algorithms = table_algorithms()
    rows = ["none", "random", *(f"{k}@{a}" for k in ("cp-s", "cp-c") for a in algorithms), *BASELINE_ROWS,
            *(surrogate_row(r) for r in (*registered_rows("effectiveness"), *registered_rows("leaderboard")))]
    return [victim_cell("leaderboard", row, victim, algorithm=victim, dataset="cifar10", scale=scale)
            for row in dict.fromkeys(rows) for victim in (*algorithms, "supervised")]


BEYOND_ROWS = ("none", "random", "cp-s", "cp-c", "ue-s", "ap-t")


@GRIDS.register("beyond")
def beyond(scale: str) -> list[Cell]:
    """Beyond the paper (issue 36): each attack against every registered victim, the successors included
    (SimSiam, Barlow Twins; the supervised victim first), on CIFAR-10 with ResNet-18. Contrastive poisons are
    made with SimCLR (`cp-s@simclr`), so that every column sees the same poison; a new attack joins with
    `extra_rows_in = ("beyond",)`. The paper column holds the successors' authors' headline numbers
    (results/paper/beyond.csv)."""
    rows = [surrogate_row(r) for r in dict.fromkeys([*BEYOND_ROWS, *registered_rows("beyond")])]
    return [victim_cell("beyond", row, victim, algorithm=victim, dataset="cifar10", scale=scale)
            for row in (*rows, CONTROL) for victim in ("supervised", *contrastive_algorithms())]


@GRIDS.register("all")
def all_cells(scale: str) -> list[Cell]:
    return [cell for name in GRIDS.names() if name != "all" for cell in GRIDS.get(name)(scale)]


def grid_cells(name: str, scale: str, extra_rows: Sequence[str] = ()) -> list[Cell]:
    """The cells of grid `name` at `scale` (an unknown grid lists the valid names), with a row for each
    imported poison in `extra_rows` (`ext:NAME`: not a paper row) added to every table of the grid."""
    cells = GRIDS.get(name)(scale)
    return cells + [cell for row in dict.fromkeys(extra_rows) for cell in external_cells(cells, row, scale)]


def external_cells(cells: list[Cell], row: str, scale: str) -> list[Cell]:
    """A row for the imported poison `row` (`ext:NAME`) in each table of `cells`: one cell per column, the
    column's victim trained on that poison (made for the victim's training set)."""
    if not is_external(row):
        raise ValueError(f"{row!r} is not an imported poison's row (ext:NAME)")
    first: dict[tuple[str, str], Cell] = {}
    for c in cells:
        if c.row != CONTROL:
            first.setdefault((c.grid, c.column), c)
    return [Cell(c.grid, row, c.column, replace(c.victim, poison=external_spec(row, c.victim.dataset, scale)),
                 c.probe) for c in first.values()]


def distinct_jobs(cells: list[Cell]) -> tuple[dict[str, AttackSpec], dict[str, VictimSpec]]:
    """One job per distinct poison and per distinct victim run (shared across cells and tables)."""
    poisons = {c.victim.poison.key: c.victim.poison for c in cells if c.victim.poison is not None}
    victims = {c.victim.key: c.victim for c in cells}
    return poisons, victims


def grids_command(scale: str) -> int:
    """`bench grids`: the grids with their cell and job counts at `scale`."""
    rows = []
    for name in GRIDS.names():
        cells = grid_cells(name, scale)
        poisons, victims = distinct_jobs(cells)
        rows.append([name, len(cells), len(poisons), len(victims), len(poisons) + len(victims)])
    print(tabulate(rows, headers=["grid", "cells", "poison jobs", "victim jobs", "jobs"]))
    return 0
