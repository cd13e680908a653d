"""A new attack is its file plus its registration, a new algorithm its file plus its recipe: no edit in
benchmark/. A throw-away attack and algorithm registered at run time go through a smoke grid into a table."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attacks import ATTACKS, Attack, Poison, register_attack
from benchmark.cli.main import main
from benchmark.dispatch.plan import make_plan
from benchmark.grids import grid_cells
from benchmark.report.tables import build_table
from victims.algorithms import ALGORITHMS, Algorithm, contrastive_algorithms
from victims.algorithms.base import mlp
from victims.recipes import MODELS, add_recipe


class BrightenAll(Attack):
    """+eps on every pixel of every image: the simplest sample-wise poison."""

    per = "sample"
    defaults = {"eps": 8 / 255}
    gpu_hours = 0.5

    def generate(self, spec, images, labels, index, *, device="cpu", workdir=None, progress=True) -> Poison:
        p = self.params(spec)
        delta = torch.full(images.shape, round(p["eps"] * 255), dtype=torch.float32)
        return Poison.create(delta, self.per, p["eps"], spec, index)


class CosineViews(Algorithm):
    """Two views' projections pulled together (a collapse-prone toy; the test is about the plumbing)."""

    name = "cosine-views"

    def __init__(self, encoder, num_classes: int = 0, *, out_dim: int = 16):
        super().__init__(encoder)
        self.head = mlp([self.feature_dim, out_dim], batch_norm=False)

    def embed(self, views):
        return self.head(self.encoder(views))

    def pair_loss(self, view1, view2, *, dual_branch: bool = False):
        return -F.cosine_similarity(self.embed(view1), self.embed(view2)).mean()


@pytest.fixture
def registered():
    register_attack("brighten")(BrightenAll)
    ALGORITHMS.register(CosineViews.name)(CosineViews)
    add_recipe(CosineViews.name, {"smoke": replace(MODELS["smoke"].train["simclr"], lr=0.05)},
               {"smoke": {"out_dim": 8}})
    yield
    ATTACKS.unregister("brighten")
    ALGORITHMS.unregister(CosineViews.name)
    for settings in MODELS.values():
        settings.train.pop(CosineViews.name, None)
        settings.algorithm_settings.pop(CosineViews.name, None)


def test_a_new_attack_and_algorithm_run_through_a_smoke_grid_into_the_table(registered, tmp_path: Path):
    assert "cosine-views" in contrastive_algorithms()
    cells = grid_cells("effectiveness", "smoke")
    assert {"brighten"} <= {c.row for c in cells} and "cifar10/cosine-views" in {c.column for c in cells}
    plan = make_plan("effectiveness", "smoke", results=tmp_path, store=tmp_path,
                     rows=["brighten"], columns=["cifar10/cosine-views"])
    assert [j.kind for j in plan.jobs] == ["poison", "victim"] and plan.paper_gpu_hours() == pytest.approx(8.5)
    assert main(["run", "--grid", "effectiveness", "--scale", "smoke", "--rows", "brighten", "none",
                 "--columns", "cifar10/cosine-views", "--cluster", "debug",
                 "--store", str(tmp_path / "store"), "--results", str(tmp_path / "res")]) == 0
    table = build_table("effectiveness", "smoke", tmp_path / "res")
    measured = {(c.row, c.column): c.ours for c in table.cells if c.ours is not None}
    assert set(measured) == {("brighten", "cifar10/cosine-views"), ("none", "cifar10/cosine-views")}
    assert all(0 <= v <= 100 for v in measured.values())


def test_without_them_the_grids_are_the_paper_s(registered):
    ATTACKS.unregister("brighten")
    ALGORITHMS.unregister(CosineViews.name)
    try:
        cells = grid_cells("all", "smoke")
        assert not {c.row for c in cells} & {"brighten"}
        assert not any("cosine-views" in c.column for c in cells)
    finally:
        register_attack("brighten")(BrightenAll)
        ALGORITHMS.register(CosineViews.name)(CosineViews)
