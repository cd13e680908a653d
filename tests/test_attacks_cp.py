"""Contrastive poisoning (cp-c, cp-s) at the smoke scale: bound, determinism, CP-S from CP-C, gradients
through the augmentations and the momentum branch, resume, and the min-min objective actually lowering
the attacker's loss."""
from __future__ import annotations

from copy import deepcopy

import pytest
import torch

from attacks import ATTACKS, AttackParamError, Poison, generate_poison
from attacks import contrastive_poisoning as cp
from attacks.delta_store import DeltaStore
from victims.recipes import build_model
from attacks.spec import AttackSpec
from benchmark.data import load_dataset
from victims.augment import contrastive_augment
from victims.train import Trainer

FAST = {"epochs": 1, "model_step": 1, "noise_step": 2, "num_steps": 1}


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", "train", per_class=32, image_size=32)


def spec(attack: str, algorithm: str = "simclr", **params) -> AttackSpec:
    return AttackSpec(attack, "cifar10", algorithm, "resnet18", params=params, scale="smoke")


def test_delta_store_is_int8_and_exact_at_the_paper_step():
    store = DeltaStore(4, (3, 8, 8), eps_pixels=8, step_pixels=0.8)
    assert store.dtype == torch.int8 and store.q == 15 and store.step_units == 12 and store.limit == 120
    assert store.nbytes * 4 == 4 * 3 * 8 * 8 * 4  # a quarter of float32
    for _ in range(20):  # 20 steps of 0.8 px in one direction stop at the bound, 8 px
        store.step(torch.tensor([1, 2]), torch.ones(2, 3, 8, 8))
    assert torch.equal(store.pixels(torch.tensor([1])), torch.full((1, 3, 8, 8), -8.0))
    assert torch.equal(store.pixels(torch.tensor([0])), torch.zeros(1, 3, 8, 8))
    store.step(None, -torch.ones(4, 3, 8, 8))
    assert torch.allclose(store.pixels(torch.tensor([0])), torch.full((1, 3, 8, 8), 0.8))
    assert DeltaStore(1, (3, 2, 2), 8, 0.16).dtype == torch.int16  # BYOL's 0.02 step does not fit int8


@pytest.mark.parametrize("attack", ["cp-c", "cp-s"])
def test_bound_shape_and_determinism(data, attack):
    s = spec(attack, **FAST, **({"init": "random"} if attack == "cp-s" else {}))
    a = generate_poison(s, data.images, data.labels, data.index, progress=False)
    b = generate_poison(s, data.images, data.labels, data.index, progress=False)
    assert torch.equal(a.delta, b.delta)
    assert a.delta.dtype == torch.int8 and int(a.delta.abs().max()) <= 8
    rows = data.num_classes if attack == "cp-c" else len(data.images)
    assert a.delta.shape == (rows, 3, 32, 32) and a.per == ("class" if attack == "cp-c" else "sample")
    assert a.delta.float().abs().mean() > 2  # U[-eps, eps] start: mean |delta| about 4 pixels


def test_cp_c_applies_to_the_right_labels(data):
    p = generate_poison(spec("cp-c", **FAST), data.images, data.labels, data.index, progress=False)
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:50]
    out = p.apply(data.images[order], data.labels[order], data.index[order])
    expected = (data.images[order].int() + p.delta[data.labels[order]].int()).clamp(0, 255)
    assert torch.equal(out.int(), expected)


def test_cp_s_starts_from_the_cp_c_poison_of_the_same_spec(data):
    s = spec("cp-s", epochs=1, model_step=1, noise_step=1, num_steps=1)
    attack = ATTACKS.get("cp-s")()
    (needed,) = attack.requires(s)
    assert needed.attack == "cp-c" and needed.algorithm == "simclr" and needed.params == {}
    cpc = generate_poison(needed, data.images, data.labels, data.index, progress=False)
    cps = generate_poison(s, data.images, data.labels, data.index, progress=False, inputs={needed.key: cpc})
    start = cpc.delta[data.labels]
    moved = (cps.delta != start).flatten(1).any(1)
    # one noise batch (64 samples) took one step of 0.8 px; every other sample is exactly its class's delta
    assert 0 < int(moved.sum()) <= 64
    assert int((cps.delta.int() - start.int()).abs().max()) <= 1
    assert ATTACKS.get("cp-s")().requires(spec("cp-s", init="random")) == []


@pytest.mark.parametrize("algorithm, through", [("moco", {"dual_branch": True}),
                                                ("byol", {"dual_branch": True, "target_gradient": True})])
def test_gradient_through_the_momentum_branch_is_a_setting(data, algorithm, through):
    model, _, _ = build_model(algorithm, "resnet18", "smoke", 10, 32, seed=0)
    aug = contrastive_augment(32, "cifar10")
    x, delta = data.images[:16], torch.zeros(16, 3, 32, 32)

    def gradient(dual_branch: bool, target_gradient: bool = False) -> torch.Tensor:
        copy = deepcopy(model)  # every forward moves the momentum copy: each setting starts from the same state
        copy.target_gradient = target_gradient
        torch.manual_seed(3)  # the same views every time
        with cp.frozen(copy):
            grad, _ = cp.delta_gradient(copy, aug, x, delta, dual_branch=dual_branch)
        assert grad.abs().sum() > 0  # non-zero through the augmentations
        return grad

    off = gradient(False)
    assert (gradient(**through) - off).abs().sum() > 1e-3 * off.abs().sum()
    if algorithm == "byol":  # the official BYOL loss detaches the target: dual_branch alone changes nothing
        assert torch.equal(gradient(True), off)


def test_moco_key_view_gets_no_gradient_when_the_branch_is_off(data):
    """Perturb only the key view: the gradient must come through the momentum encoder, or be zero."""
    model, _, _ = build_model("moco", "resnet18", "smoke", 10, 32, seed=0)
    aug = contrastive_augment(32, "cifar10")
    model.eval()
    clean = aug(cp.poisoned(data.images[:16], torch.zeros(16, 3, 32, 32)))
    for dual, expect_zero in ((False, True), (True, False)):
        delta = torch.zeros(16, 3, 32, 32, requires_grad=True)
        loss = model.pair_loss(clean, aug(cp.poisoned(data.images[:16], delta)), dual_branch=dual)
        grad = torch.autograd.grad(loss, delta, allow_unused=True)[0]
        total = 0.0 if grad is None else float(grad.abs().sum())
        assert (total == 0.0) == expect_zero


def test_perturbation_steps_lower_the_attackers_loss_more_than_random_noise(data):
    """The min part of min-min: a few signed steps through fresh augmentations lower the (frozen, briefly
    trained) attacker's loss on the poisoned batch below the clean and the random-noise losses."""
    torch.manual_seed(0)
    model, config, _ = build_model("simclr", "resnet18", "smoke", 10, 32, seed=1)
    aug = contrastive_augment(32, "cifar10")
    trainer = Trainer(model, config, aug, "cpu", steps_per_epoch=40)
    x, y = data.images[:64], data.labels[:64]
    for i in range(40):
        trainer.train_step(x, y, salt=i)

    def loss_of(delta: torch.Tensor) -> float:
        torch.manual_seed(5)  # the same evaluation views for every delta
        with cp.frozen(model), torch.no_grad():
            return sum(float(model.pair_loss(aug(cp.poisoned(x, delta)), aug(cp.poisoned(x, delta))))
                       for _ in range(4)) / 4

    delta = torch.zeros(64, 3, 32, 32)
    with cp.frozen(model):
        for _ in range(5):
            grad, _ = cp.delta_gradient(model, aug, x, delta)
            delta = (delta - 1.6 * grad.sign()).clamp(-8, 8)
    noise = torch.empty_like(delta).uniform_(-8, 8, generator=torch.Generator().manual_seed(1))
    clean, poisoned, random = loss_of(torch.zeros_like(delta)), loss_of(delta), loss_of(noise)
    assert poisoned < clean - 0.01 and poisoned < random - 0.01, (clean, poisoned, random)


def test_resume_after_an_interruption_gives_the_same_poison(data, tmp_path, monkeypatch):
    s = spec("cp-c", epochs=3, model_step=1, noise_step=1)
    whole = generate_poison(s, data.images, data.labels, data.index, progress=False)
    monkeypatch.setattr(cp, "SAVE_EVERY_S", 0.0)
    calls = {"n": 0}
    original = cp.ContrastivePoisoning.perturbation_step

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # in the third epoch, after two epochs were saved
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.ContrastivePoisoning, "perturbation_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_poison(s, data.images, data.labels, data.index, progress=False, workdir=tmp_path)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(cp.ContrastivePoisoning, "perturbation_step", original)
    resumed = generate_poison(s, data.images, data.labels, data.index, progress=False, workdir=tmp_path)
    assert torch.equal(resumed.delta, whole.delta)


def test_bad_parameters_are_clear_errors(data):
    with pytest.raises(AttackParamError, match="valid parameters.*num_steps"):
        generate_poison(spec("cp-c", steps=3), data.images, data.labels, data.index, progress=False)
    with pytest.raises(AttackParamError, match="simclr"):
        generate_poison(spec("cp-c", "supervised"), data.images, data.labels, data.index, progress=False)
    with pytest.raises(AttackParamError, match="init"):
        generate_poison(spec("cp-s", init="zeros"), data.images, data.labels, data.index, progress=False)


def test_stored_cp_s_poison_reuses_and_stores_its_cp_c(tmp_path):
    from benchmark.jobs.poison import make_poison, poison_path

    s = spec("cp-s", epochs=1, model_step=1, noise_step=1, num_steps=1)
    made = make_poison(s, store=tmp_path, device="cpu", progress=False)
    cpc_spec = cp.cpc_spec_for(s)
    assert poison_path(cpc_spec, tmp_path).is_file() and poison_path(s, tmp_path).is_file()
    assert torch.equal(Poison.load(poison_path(s, tmp_path), expected_spec=s).delta, made.delta)


def test_a_poison_made_with_other_settings_or_from_another_cp_c_is_made_again(tmp_path):
    """A budget change (the record's settings) or a CP-C made again (the checksum CP-S started from) makes
    the stored poison stale: the plan lists it as pending and make_poison makes it again."""
    import json

    from benchmark.dispatch.plan import stored_poison_checksum
    from benchmark.jobs.poison import attack_settings, load_poison, make_poison, poison_path

    s = spec("cp-s", epochs=1, model_step=1, noise_step=1, num_steps=1)
    made = make_poison(s, store=tmp_path, device="cpu", progress=False)
    record_file = poison_path(s, tmp_path).with_suffix(".json")
    record = json.loads(record_file.read_text())
    cpc = cp.cpc_spec_for(s)
    assert record["settings"] == attack_settings(s)
    assert record["inputs"] == {cpc.key: load_poison(cpc, tmp_path).checksum}
    assert stored_poison_checksum(s, tmp_path) == made.checksum

    def stale_after(edit) -> bool:
        changed = json.loads(json.dumps(record))
        edit(changed)
        record_file.write_text(json.dumps(changed))
        return load_poison(s, tmp_path) is None and stored_poison_checksum(s, tmp_path) is None

    assert not stale_after(lambda r: None)
    assert not stale_after(lambda r: (r.pop("settings"), r.pop("inputs")))  # made before these were kept
    assert stale_after(lambda r: r["settings"].update(epochs=5))
    assert stale_after(lambda r: r["inputs"].update({cpc.key: "0" * 64}))
    made_again = make_poison(s, store=tmp_path, device="cpu", progress=False)
    assert json.loads(record_file.read_text())["settings"] == attack_settings(s)
    assert torch.equal(made_again.delta, made.delta)  # same settings and seed: the same poison, from the start
    assert load_poison(s, tmp_path) is not None


def test_plan_orders_cp_s_after_its_cp_c(tmp_path):
    from benchmark.dispatch.plan import make_plan

    plan = make_plan("effectiveness", "smoke", results=tmp_path / "r", store=tmp_path / "s",
                     rows=["cp-s"], columns=["cifar10/moco"])
    poisons = [j for j in plan.jobs if j.kind == "poison"]
    assert [j.attack.attack for j in poisons] == ["cp-c", "cp-s"]
    assert poisons[1].depends_on == poisons[0].key and poisons[0].depends_on is None


@pytest.mark.parametrize("scale", ["smoke", "mini", "paper"])
def test_official_per_algorithm_budgets_hold_at_every_scale(scale):
    def p(attack, algorithm):
        return cp.budget(AttackSpec(attack, "cifar10", algorithm, "resnet18", scale=scale))

    assert (p("cp-s", "byol")["num_steps"], p("cp-s", "byol")["step_size"]) == (1, 0.02)
    assert p("cp-s", "moco")["step_size"] == 0.1 and p("cp-c", "byol")["step_size"] == 0.1
    assert p("cp-s", "simclr")["release_fraction"] == 0.8 and p("cp-s", "moco")["release_fraction"] == 1.0
    official = {"dual_branch": True, "target_gradient": False, "gradient_precision": "float32",
                "release_rounding": "floor"}
    assert {k: p("cp-c", "moco")[k] for k in official} == official


def test_cp_s_starts_from_cp_c_at_the_paper_scale_and_from_uniform_noise_at_mini():
    """The official CP-S starts from a finished CP-C; the mini scale starts from uniform noise (the budget
    curve measured it stronger there, docs/fidelity.md) and so needs no CP-C job; a spec can still ask."""
    def cps(scale, **params):
        return AttackSpec("cp-s", "cifar10", "simclr", "resnet18", params=params, scale=scale)

    attack = ATTACKS.get("cp-s")()
    assert cp.budget(cps("paper"))["init"] == "cp-c" and cp.budget(cps("smoke"))["init"] == "cp-c"
    assert [r.attack for r in attack.requires(cps("paper"))] == ["cp-c"]
    assert cp.budget(cps("mini"))["init"] == "random" and attack.requires(cps("mini")) == []
    assert [r.attack for r in attack.requires(cps("mini", init="cp-c"))] == ["cp-c"]
    assert cp.budget(cps("mini"))["epochs"] == 30 and round(30 * cp.budget(cps("mini"))["release_fraction"]) == 24


def test_the_attacker_s_encoder_follows_the_official_cp_schedule():
    s = spec("cp-s")
    model, config, _ = cp.surrogate(s, cp.budget(s), 10, 32)
    assert (config.warmup_epochs, config.lr_schedule, config.epochs) == (0, "epoch", 2)
    assert model.loss_scale == pytest.approx(0.5 / 0.07)
    with pytest.raises(AttackParamError, match="target_gradient is BYOL's"):
        cp.budget(spec("cp-c", "moco", target_gradient=True))
    with pytest.raises(AttackParamError, match="release_rounding must be one of"):
        cp.budget(spec("cp-c", release_rounding="up"))


def test_only_the_mini_moco_attacker_warms_up():
    """The official CP encoder has no warm-up; the mini MoCo v2 attacker collapses without one, so that scale
    (and only it) warms it up over ~120 encoder steps, in CP-C's and CP-S's own epochs."""
    def config(attack, algorithm, scale, **params):
        s = AttackSpec(attack, "cifar10", algorithm, "resnet18", params=params, scale=scale)
        return cp.surrogate(s, cp.budget(s), 10, 32)[1]

    assert config("cp-c", "moco", "mini").warmup_epochs * cp.budget(
        AttackSpec("cp-c", "cifar10", "moco", "resnet18", scale="mini"))["model_step"] == 120
    assert config("cp-s", "moco", "mini").warmup_epochs == 3
    for scale in ("paper", "smoke"):
        assert config("cp-c", "moco", scale).warmup_epochs == 0 and config("cp-s", "moco", scale).warmup_epochs == 0
    for algorithm in ("simclr", "byol"):
        assert config("cp-s", algorithm, "mini").warmup_epochs == 0
    assert config("cp-s", "simclr", "paper", warmup_epochs=5).warmup_epochs == 5
    with pytest.raises(AttackParamError, match="warmup_epochs in"):
        cp.budget(spec("cp-c", warmup_epochs=3))  # smoke CP-C runs 3 epochs


def test_settings_added_since_keep_older_poisons_current_at_their_old_value(tmp_path):
    """A poison recorded before `warmup_epochs` existed was made without a warm-up: current where the attack
    still has none, out of date where it has one now (the mini MoCo v2 attacker)."""
    from benchmark.jobs.poison_store import attack_settings, comparable

    for algorithm, current in (("simclr", True), ("moco", False)):
        s = AttackSpec("cp-c", "cifar10", algorithm, "resnet18", scale="mini")
        old = attack_settings(s)
        old.pop("warmup_epochs")
        old["surrogate"]["train"]["warmup_epochs"] = 0
        assert (comparable(old) == comparable(attack_settings(s))) is current


def test_checkpoints_of_a_run_with_other_settings_are_not_resumed(tmp_path):
    """A poison job stopped before its budget changed leaves checkpoints under the same key: the next job
    starts again rather than resuming them; a folder started with the same settings is kept."""
    from benchmark.jobs.poison_store import clear_stale_workdir

    work = tmp_path / "p.work"
    clear_stale_workdir(work, {"epochs": 30})
    (work / "state.pt").write_bytes(b"checkpoint")
    clear_stale_workdir(work, {"epochs": 30})
    assert (work / "state.pt").is_file()
    clear_stale_workdir(work, {"epochs": 30, "warmup_epochs": 3})
    assert not (work / "state.pt").exists() and (work / "settings.json").is_file()
    legacy = tmp_path / "legacy.work"  # made before stamps: kept, as before
    legacy.mkdir()
    (legacy / "state.pt").write_bytes(b"checkpoint")
    clear_stale_workdir(legacy, {"epochs": 30})
    assert (legacy / "state.pt").is_file()


def test_release_rounds_down_as_the_official_loader_does(data):
    made = {r: generate_poison(spec("cp-c", release_rounding=r), data.images, data.labels, data.index,
                               progress=False) for r in ("floor", "nearest")}
    floor, nearest = made["floor"].delta.int(), made["nearest"].delta.int()
    # the same working delta, released two ways: floor is never above nearest and at most one pixel below
    assert bool(((nearest - floor) >= 0).all()) and bool(((nearest - floor) <= 1).all())
    assert bool((nearest != floor).any())
    assert int(floor.min()) >= -8 and int(floor.max()) <= 8


def test_a_poison_s_settings_include_its_surrogate_s():
    from benchmark.jobs.poison import attack_settings

    settings = attack_settings(spec("cp-c", "moco"))
    assert settings["surrogate"]["algorithm"]["base_temperature"] == 0.07
    assert settings["surrogate"]["train"]["lr_schedule"] == "epoch"
    assert "surrogate" not in attack_settings(AttackSpec("random", "cifar10", scale="smoke"))


def test_a_run_stopped_early_releases_its_snapshots_and_goes_on_to_the_same_poison(data, tmp_path):
    """The budget curve's staged run: snapshots at the asked epochs, a stop with the checkpoint saved, and a
    later run that goes on from there to the poison an uninterrupted run makes."""
    s = spec("cp-s", epochs=3, model_step=1, noise_step=1, init="random", release_fraction=1.0)
    whole = generate_poison(s, data.images, data.labels, data.index, progress=False)
    attack = ATTACKS.get("cp-s")()
    seen: dict[int, Poison] = {}
    attack.snapshot_epochs, attack.stop_after = {1, 2}, 2
    attack.on_snapshot = lambda epoch, poison, history: seen.update({epoch: poison}) or None
    early = attack.generate(s, data.images, data.labels, data.index, progress=False, workdir=tmp_path)
    assert sorted(seen) == [1, 2] and torch.equal(early.delta, seen[2].delta)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["epoch"] == 2
    assert not torch.equal(early.delta, whole.delta)
    rest = ATTACKS.get("cp-s")()
    resumed = rest.generate(s, data.images, data.labels, data.index, progress=False, workdir=tmp_path)
    assert rest.report["resumed_from_epoch"] == 2
    assert torch.equal(resumed.delta, whole.delta)


def test_the_attacker_collapse_script_reports_loss_and_spread(capsys, monkeypatch):
    """benchmark/scripts/attacker_collapse.py (docs/evidence.md quotes it) runs and prints its measures."""
    import importlib.util
    import re
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmark" / "scripts" / "attacker_collapse.py"
    module_spec = importlib.util.spec_from_file_location("attacker_collapse", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["attacker_collapse.py", "--scale", "smoke", "--algorithm", "moco",
                                      "--epochs", "10", "--warmup-epochs", "1", "--steps", "20"])
    module.main()
    lines = re.findall(r"step +(\d+) +lr ([\d.]+) +loss +([\d.]+) +embedding spread ([\d.]+)", capsys.readouterr().out)
    assert [int(s) for s, *_ in lines] == [10, 20]
    assert all(float(lr) > 0 and float(loss) > 0 and 0 <= float(spread) <= 1 for _, lr, loss, spread in lines)
