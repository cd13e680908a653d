"""The pilot study's harness (issue 39): registered scales, pilot settings, the shortcut diagnostics, and a
tiny pilot run end to end on real CIFAR-10."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attacks import AttackParamError, Poison
from attacks import budgets as attack_budgets
from attacks.contrastive_poisoning import BUDGETS as CP_BUDGETS, SCALE_PER_ALGORITHM, budget
from attacks.spec import AttackSpec
from benchmark.cli.main import main
from benchmark.data import ImageData, first_classes
from benchmark.pilots import diagnose
from benchmark.pilots.config import PILOTS, PilotConfig, parse_overrides, pilot_scale, resolve
from benchmark.pilots.table import render
from benchmark.scales import SCALE_TABLE, get_scale, register_scale, unregister_scale
from benchmark.specs import SCALES, VictimSpec
from victims.recipes import MODELS, model_settings

TINY = ["classes=2", "per_class=64", "victim_batch=32", "victim_epochs=1", "supervised_epochs=1",
        "cp_c_epochs=1", "cp_c_steps=1", "cp_s_epochs=1", "cp_s_num_steps=1"]


@pytest.fixture
def derived():
    """A scale made like mini with a CP-C budget of its own; withdrawn afterwards."""
    mini = get_scale("mini")
    from dataclasses import replace

    scale = register_scale(replace(mini, name="test-derived"), model_settings("mini"), like="mini",
                           attack_budgets_over={"cp-c": {"epochs": 7}})
    yield scale
    unregister_scale("test-derived")


def test_a_registered_scale_gets_every_attack_budget_of_the_scale_it_is_like_with_its_own_over_them(derived):
    assert "test-derived" in SCALES and SCALE_TABLE["test-derived"] is derived and "test-derived" in MODELS
    spec = AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale="test-derived")
    assert budget(spec)["epochs"] == 7 and CP_BUDGETS["mini"]["cp-c"]["epochs"] == 40
    assert budget(AttackSpec("cp-s", "cifar10", "simclr", "resnet18", scale="test-derived")) == \
        budget(AttackSpec("cp-s", "cifar10", "simclr", "resnet18", scale="mini"))
    # mini's departures per algorithm (the MoCo v2 attacker's warm-up) come along
    assert SCALE_PER_ALGORITHM[("test-derived", "cp-c", "moco")] == SCALE_PER_ALGORITHM[("mini", "cp-c", "moco")]
    assert VictimSpec("simclr", scale="test-derived").scale == "test-derived"  # a spec accepts it
    with pytest.raises(ValueError, match="exists already"):
        register_scale(derived, model_settings("mini"), like="mini")


def test_withdrawing_a_scale_forgets_it_everywhere_and_the_built_in_ones_stay(derived):
    unregister_scale("test-derived")
    assert "test-derived" not in SCALES and "test-derived" not in CP_BUDGETS
    assert ("test-derived", "cp-c", "moco") not in SCALE_PER_ALGORITHM
    with pytest.raises(Exception, match="scale"):
        VictimSpec("simclr", scale="test-derived")
    with pytest.raises(ValueError, match="built-in"):
        unregister_scale("mini")
    register_scale(derived, model_settings("mini"), like="mini")  # the fixture withdraws it again


def test_a_bad_budget_override_is_refused_before_anything_is_registered():
    from dataclasses import replace

    scale = replace(get_scale("mini"), name="test-bad")
    with pytest.raises(AttackParamError, match="unknown budget parameter.*epochz"):
        register_scale(scale, model_settings("mini"), like="mini", attack_budgets_over={"cp-c": {"epochz": 3}})
    with pytest.raises(AttackParamError, match="no per-scale budget.*random"):
        register_scale(scale, model_settings("mini"), like="mini", attack_budgets_over={"random": {"eps": 1}})
    assert "test-bad" not in SCALES and "test-bad" not in CP_BUDGETS and "test-bad" not in MODELS
    assert attack_budgets.budgeted_attacks() >= {"cp-c", "cp-s", "ue-s", "ap-t"}


def test_first_classes_keeps_only_those_classes_with_their_ids():
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    data = ImageData("x", "train", torch.zeros(6, 3, 4, 4, dtype=torch.uint8), labels, list("abcd"), "test",
                     index=torch.arange(10, 16))
    kept = first_classes(data, 2)
    assert kept.labels.tolist() == [0, 1, 1, 0] and kept.index.tolist() == [10, 11, 14, 15]
    assert kept.classes == ["a", "b"] and kept.num_classes == 2
    with pytest.raises(ValueError, match="first 5 of 4"):
        first_classes(data, 5)


def test_pilot_settings_are_checked_typed_and_named():
    assert parse_overrides(["width=0.25", "input_px=16"]) == {"width": 0.25, "input_px": 16}
    with pytest.raises(ValueError, match="key one of"):
        parse_overrides(["depth=3"])
    with pytest.raises(ValueError, match="takes a int"):
        parse_overrides(["per_class=many"])
    with pytest.raises(ValueError, match="width 2.0 must be in"):
        PilotConfig("x", width=2.0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        PilotConfig("x", per_class=10, classes=2)
    with pytest.raises(ValueError, match="built in"):
        resolve("mini", {"width": 0.5})
    with pytest.raises(ValueError, match="unknown pilot"):
        resolve("nothing")
    assert resolve("w0.25-px16") is PILOTS["w0.25-px16"]
    assert PILOTS["w0.25-px16"].changes() == {"width": 0.25, "input_px": 16}
    assert PILOTS["mini"].changes() == {}


def test_a_pilot_scale_is_mini_with_its_changes():
    config = PilotConfig("test-w", width=0.25, input_px=16, per_class=500, victim_epochs=50, cp_c_epochs=80)
    try:
        scale = pilot_scale(config)
        source = scale.source("cifar10")
        assert (scale.name, scale.width, source.input_size, source.image_size, source.train_per_class) == \
            ("pilot-test-w", 0.25, 16, 16, 500)
        simclr = scale.train_config("simclr", "cifar10", "resnet18")
        assert (simclr.epochs, simclr.warmup_epochs, simclr.lr) == (50, 6, get_scale("mini").train["simclr"].lr)
        assert budget(AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale=scale.name))["epochs"] == 80
        assert model_settings(scale.name).width == 0.25
    finally:
        unregister_scale("pilot-test-w")


def _images(n: int = 64, classes: int = 4, side: int = 16) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, side, side), generator=generator, dtype=torch.uint8)
    return ImageData("cifar10", "train", images, torch.arange(n) % classes, [str(c) for c in range(classes)], "x")


def test_the_augmented_delta_of_a_class_wise_colour_code_is_readable_and_a_zero_poison_is_not():
    data = _images(n=400)
    colours = torch.tensor([[32, -32, 32], [-32, 32, -32], [32, 32, -32], [-32, -32, 32]], dtype=torch.float32)
    code = colours[:, :, None, None].expand(4, 3, 16, 16).clone()
    spec = AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale="smoke")
    coded = diagnose.augmented_separability(Poison.create(code, "class", 32 / 255, spec), data, count=400)
    zero = diagnose.augmented_separability(Poison.create(torch.zeros_like(code), "class", 32 / 255, spec), data,
                                           count=400)
    assert coded["augmented_delta"] >= 90 and coded["chance"] == 25.0
    assert zero["augmented_delta"] <= 45  # nothing to read: about chance
    assert zero["gain"] == 0.0  # the same draws: poisoned views are the clean ones


def test_the_attacker_losses_pair_their_view_draws(tmp_path: Path, monkeypatch):
    """With a zero poison the poisoned and clean losses are equal only if both see the same draws."""
    from victims.recipes import build_model

    spec = AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale="smoke")
    data = _images(n=64, side=32)
    assert diagnose.attacker_losses(spec, Poison.create(torch.zeros(4, 3, 32, 32), "class", 8 / 255, spec),
                                    data, store=tmp_path) is None  # no attacker state: nothing to measure
    model, _, _ = build_model("simclr", "resnet18", "smoke", 4, 32, seed=1)
    work = diagnose.poison_path(spec, tmp_path).with_suffix(".work")
    work.mkdir(parents=True)
    torch.save({"key": spec.key, "trainer": {"algorithm": model.state_dict()}}, work / "state.pt")
    zero = Poison.create(torch.zeros(4, 3, 32, 32), "class", 8 / 255, spec)
    losses = diagnose.attacker_losses(spec, zero, data, store=tmp_path, batches=2, batch_size=32)
    assert losses["poisoned"] == pytest.approx(losses["clean"], rel=1e-6)
    loud = Poison.create(torch.full((4, 3, 32, 32), 8.0) * torch.tensor([1, -1, 1, -1])[:, None, None, None],
                         "class", 8 / 255, spec)
    assert diagnose.attacker_losses(spec, loud, data, store=tmp_path, batches=2, batch_size=32)["poisoned"] != \
        losses["poisoned"]


def test_a_tiny_pilot_runs_every_stage_on_real_cifar10_and_resumes(shared_data, session_store, tmp_path, capsys):
    results = tmp_path / "pilots"
    args = ["--data-root", str(shared_data), "--store", str(session_store), "pilot", "run", "tiny",
            "--results", str(results), "--stages", "untrained", "clean", "cp-c", "random"]
    try:
        assert main(args + [a for item in TINY for a in ("--set", item)]) == 0
        summary = json.loads((results / "tiny.json").read_text())
        assert summary["scale"] == "pilot-tiny" and summary["data"] == "cifar10 (32 px, 64/class, first 2 classes)"
        assert set(summary["attacks"]) == {"cp-c", "random"}
        cp_c = summary["attacks"]["cp-c"]
        assert cp_c["diagnostics"]["separability"]["chance"] == 50.0
        assert set(cp_c["diagnostics"]["attacker_loss"]) == {"poisoned", "clean"}
        assert set(cp_c["diagnostics"]["victim_loss"]) == {"poisoned", "clean"}
        assert summary["attacks"]["random"]["diagnostics"]["attacker_loss"] is None  # random noise has no attacker
        assert cp_c["poison_minutes"] is not None and summary["clean"] is not None
        records = sorted((results / "records" / "pilot-tiny").glob("*.json"))
        assert len(records) == 4  # untrained, clean, cp-c, random: kept apart from every other scale's
        stamps = [p.stat().st_mtime_ns for p in records]
        assert main(args + [a for item in TINY for a in ("--set", item)]) == 0  # done stages are not run again
        assert [p.stat().st_mtime_ns for p in records] == stamps
        # a second victim seed: each seed's damage against its own clean victim, their mean and spread
        assert main(args[:-4] + ["clean", "random", "--seeds", "1112", "1113"]
                    + [a for item in TINY for a in ("--set", item)]) == 0
        summary = json.loads((results / "tiny.json").read_text())
        random = summary["attacks"]["random"]
        assert set(summary["clean_seeds"]) == {"1112", "1113"} and set(random["seeds"]) == {"1112", "1113"}
        assert random["seeds"]["1112"]["probe"] == random["probe"]
        assert random["seeds"]["1112"]["clean"] == summary["clean"] != random["seeds"]["1113"]["clean"]
        assert "seeds" not in summary["attacks"]["cp-c"]  # one seed only
        assert main(["pilot", "table", "--results", str(results), "--figures", str(tmp_path / "fig")]) == 0
        table = (results / "table.md").read_text()
        assert "| tiny | per_class=64, classes=2" in table
        assert main(args + ["--seeds", "7"] + [a for item in TINY for a in ("--set", item)]) == 2
    finally:
        unregister_scale("pilot-tiny")
    capsys.readouterr()
    assert main(["pilot", "run", "nothing"]) == 2
    assert "unknown pilot 'nothing'" in capsys.readouterr().err


def test_seed_damages_pair_each_seed_with_its_own_clean_victim():
    from benchmark.pilots.run import seed_summary

    out = seed_summary({1112: (50.0, 45.0), 1113: (52.0, 44.0), 1114: (29.0, 28.0)}, 30.0)
    assert out["seeds"][1112]["damage"] == 0.25 and out["seeds"][1113]["damage"] == pytest.approx(8 / 22, abs=1e-3)
    assert out["seeds"][1114]["damage"] is None  # clean below the floor: undefined, left out of the mean
    assert out["damage_mean"] == pytest.approx((0.25 + 8 / 22) / 2, abs=1e-3)
    assert out["damage_spread"] == pytest.approx(abs(0.25 - 8 / 22) / 2 ** 0.5, abs=1e-3)
    assert "damage_mean" not in seed_summary({1112: (50.0, 45.0)}, 30.0)
    row = render([{"pilot": {"name": "p"}, "changes": {}, "data": "d", "clean": 50.0, "untrained": 30.0,
                   "attacks": {"cp-c": {"damage": 0.25, **out}}}])
    assert "0.31 ± 0.08 (2 seeds)" in row


def test_the_table_renders_what_is_missing_as_a_dash():
    row = render([{"pilot": {"name": "p"}, "changes": {"width": 0.25}, "data": "d", "clean": 50.0,
                   "untrained": 30.0, "attacks": {"cp-c": {"damage": 0.25, "poison_minutes": 8.0,
                                                           "victim_minutes": 12.0, "diagnostics": None}}}])
    assert "| p | width=0.25 | d | 50.0 / 30.0 (20.0) | - | 0.25 | - |" in row
    assert "8 + 12" in row


def test_the_mini_pilot_is_a_view_of_the_mini_scales_own_records(tmp_path: Path):
    from benchmark.pilots.run import PilotRun

    run = PilotRun(PILOTS["mini"], results=tmp_path, store=tmp_path / "store",
                   mini_results=Path(__file__).resolve().parents[1] / "results")
    assert run.scale.name == "mini" and "mini" in SCALES and "pilot-mini" not in SCALES
    summary = run.summary()  # the committed mini records: nothing trained
    assert summary["untrained"] == pytest.approx(26.5, abs=0.1)
    assert summary["clean"] == pytest.approx(46.9, abs=0.1)  # seed 1112's clean SimCLR victim
    assert summary["attacks"]["cp-s"]["damage"] == pytest.approx(0.34, abs=0.01)
    assert summary["attacks"]["cp-c"]["damage"] < 0


def test_cost_estimates_scale_minis_measured_minutes_by_flops_and_work(capsys):
    from benchmark.pilots.config import MINI_MINUTES

    assert PILOTS["mini"].estimated_minutes() == MINI_MINUTES
    assert PILOTS["w0.25-px16"].estimated_minutes() == MINI_MINUTES  # 2x the width, half the side: same FLOPs
    wide = PILOTS["w0.25"].estimated_minutes()
    assert wide == {k: pytest.approx(4 * v) for k, v in MINI_MINUTES.items()}
    half = PilotConfig("h", per_class=500, victim_epochs=50, cp_s_num_steps=2).estimated_minutes()
    assert half["victim"] == pytest.approx(MINI_MINUTES["victim"]) and half["cp-s"] == pytest.approx(
        MINI_MINUTES["cp-s"] * 0.5 * 3 / 6, abs=0.1)
    assert main(["pilot", "list"]) == 0
    assert "w0.25-px16" in capsys.readouterr().out
