"""The supervised-surrogate baselines at the smoke scale: ue-s, ue-c (unlearnable examples) and ap-t, ap-u
(adversarial poisoning): bound, shape, determinism, the effect each is meant to have on its surrogate,
parameter validation and resuming from the workdir."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from attacks import AttackParamError, Poison, generate_poison
from attacks.adversarial import SURROGATE_FILE, _AdversarialPoisoning
from attacks.spec import AttackSpec
from attacks.unlearnable import BUDGETS, STATE_FILE, UnlearnableClasswise, _MinMin, build_surrogate, scaled_params
from benchmark.data import load_dataset
from victims.augment import eval_transform
from victims.train import Trainer, load_checkpoint

ATTACKS = ("ue-s", "ue-c", "ap-t", "ap-u")
# Smaller budgets for the runs on 80 images that check determinism and resuming (the code paths, not the effect).
SMALL = {"ue-s": {"train_steps": 3}, "ue-c": {"train_steps": 3}, "ap-t": {"surrogate_epochs": 3},
         "ap-u": {"surrogate_epochs": 3}}


def spec_of(attack: str, **params) -> AttackSpec:
    return AttackSpec(attack, "cifar10", "supervised", "resnet18", params=params, scale="smoke")


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", "train", per_class=32, image_size=32)


@pytest.fixture(scope="module")
def small():
    return load_dataset("synthetic", "train", per_class=8, image_size=32)


@pytest.fixture(scope="module")
def made(data, tmp_path_factory) -> Callable[[str], tuple[Poison, Path]]:
    """Each attack's poison of the 320 smoke images (made once), with its workdir. ap-u starts from a copy
    of ap-t's surrogate checkpoint (the same network, data and seed), which also exercises its reuse."""
    cache: dict[str, tuple[Poison, Path]] = {}

    def make(attack: str) -> tuple[Poison, Path]:
        if attack not in cache:
            work = tmp_path_factory.mktemp(attack)
            if attack == "ap-u":
                shutil.copy(make("ap-t")[1] / SURROGATE_FILE, work / SURROGATE_FILE)
            poison = generate_poison(spec_of(attack), data.images, data.labels, data.index, workdir=work,
                                     progress=False)
            cache[attack] = poison, work
        return cache[attack]

    return make


@pytest.fixture(scope="module")
def made_small(small) -> Callable[[str], Poison]:
    """Each attack's poison of 80 smoke images (SMALL budgets) without a workdir (made once)."""
    cache: dict[str, Poison] = {}

    def make(attack: str) -> Poison:
        if attack not in cache:
            cache[attack] = generate_poison(spec_of(attack, **SMALL[attack]), small.images, small.labels, small.index,
                                            progress=False)
        return cache[attack]

    return make


def surrogate(attack: str, work: Path, num_classes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The attacker's final surrogate from its workdir: uint8 images -> logits (eval mode)."""
    model, _, size = build_surrogate(spec_of(attack), num_classes, 32)
    state = load_checkpoint(work / (STATE_FILE if attack.startswith("ue") else SURROGATE_FILE))
    model.load_state_dict(state["trainer"]["algorithm"])
    model.eval()
    normalize = eval_transform(size, "raw" if attack.startswith("ue") else "cifar10")  # UE's sees raw pixels

    @torch.no_grad()
    def logits(images: torch.Tensor) -> torch.Tensor:
        return model.logits(normalize(images))

    return logits


@pytest.mark.parametrize("attack", ATTACKS)
def test_bound_shape_and_rows(attack, made, data):
    poison, _ = made(attack)
    assert poison.per == ("class" if attack == "ue-c" else "sample")
    rows = data.num_classes if attack == "ue-c" else len(data.images)
    assert poison.delta.dtype == torch.int8 and poison.delta.shape == (rows, 3, 32, 32)
    assert poison.eps_pixels == 8 and int(poison.delta.abs().max()) <= 8
    # a real perturbation, not (almost) zero (ue-c starts at zero and takes few steps at the smoke scale)
    assert poison.delta.float().abs().mean() > (0.5 if attack == "ue-c" else 1.0)
    expected = torch.arange(data.num_classes) if attack == "ue-c" else data.index
    assert torch.equal(poison.index, expected)
    out = poison.apply(data.images, data.labels, data.index)
    assert (out.int() - data.images.int()).abs().max() <= 8


@pytest.mark.parametrize("attack", ATTACKS)
def test_same_seed_same_poison_and_caller_rng_untouched(attack, small, made_small):
    first = made_small(attack)
    before = torch.get_rng_state()
    again = generate_poison(spec_of(attack, **SMALL[attack]), small.images, small.labels, small.index,
                            progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first.delta, again.delta) and first.checksum == again.checksum


def test_ue_s_minimises_the_surrogate_error(made, data):
    poison, work = made("ue-s")
    logits = surrogate("ue-s", work, data.num_classes)
    clean = F.cross_entropy(logits(data.images), data.labels)
    poisoned = F.cross_entropy(logits(poison.apply(data.images, data.labels, data.index)), data.labels)
    state = load_checkpoint(work / STATE_FILE)
    assert state["done"] or poisoned < 0.8 * clean, (float(clean), float(poisoned), state["history"])


def test_ue_s_stops_once_the_error_is_below_stop_error(small, tmp_path):
    spec = spec_of("ue-s", stop_error=1.01, train_steps=3)  # any error is below 1.01
    generate_poison(spec, small.images, small.labels, small.index, workdir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / STATE_FILE)
    assert state["done"] and state["round"] == 1 and len(state["history"]) == 1


def test_ap_t_pushes_images_toward_the_next_class(made, data):
    poison, work = made("ap-t")
    logits = surrogate("ap-t", work, data.num_classes)
    target = (data.labels + 1) % data.num_classes
    clean = (logits(data.images).argmax(1) == target).float().mean()
    poisoned = (logits(poison.apply(data.images, data.labels, data.index)).argmax(1) == target).float().mean()
    assert poisoned > clean + 0.05, (float(clean), float(poisoned))


def test_ap_u_raises_the_loss_of_the_true_class(made, data):
    poison, work = made("ap-u")
    logits = surrogate("ap-u", work, data.num_classes)
    clean = F.cross_entropy(logits(data.images), data.labels)
    poisoned = F.cross_entropy(logits(poison.apply(data.images, data.labels, data.index)), data.labels)
    assert poisoned > 1.2 * clean, (float(clean), float(poisoned))


@pytest.mark.parametrize("attack", ATTACKS)
def test_unknown_parameter_names_the_valid_ones(attack, small):
    with pytest.raises(AttackParamError, match="bogus") as e:
        generate_poison(spec_of(attack, bogus=1), small.images, small.labels, small.index, progress=False)
    assert "pgd_steps" in str(e.value) and "eps" in str(e.value)
    with pytest.raises(AttackParamError, match="pgd_steps"):
        generate_poison(spec_of(attack, pgd_steps=0), small.images, small.labels, small.index, progress=False)


def _boom(*args, **kwargs):
    raise AssertionError("recomputed instead of resumed")


@pytest.mark.parametrize("attack", ATTACKS)
def test_finished_workdir_is_reused_without_recomputing(attack, made, data, monkeypatch):
    poison, work = made(attack)
    assert (work / STATE_FILE).is_file()
    monkeypatch.setattr(Trainer, "train_step", _boom)
    monkeypatch.setattr(_MinMin, "input_grad", _boom)
    monkeypatch.setattr(_AdversarialPoisoning, "_batch", _boom)
    again = generate_poison(spec_of(attack), data.images, data.labels, data.index, workdir=work, progress=False)
    assert torch.equal(again.delta, poison.delta) and again.checksum == poison.checksum


@pytest.mark.parametrize("attack,method", [("ue-s", "train"), ("ap-t", "_batch")])
def test_interrupted_run_resumes_to_the_same_poison(attack, method, small, made_small, tmp_path, monkeypatch):
    owner = _MinMin if attack == "ue-s" else _AdversarialPoisoning
    original, calls = getattr(owner, method), []

    def second_call_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("pre-empted")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, second_call_fails)
    with pytest.raises(KeyboardInterrupt):
        generate_poison(spec_of(attack, **SMALL[attack]), small.images, small.labels, small.index, workdir=tmp_path,
                        progress=False)
    monkeypatch.setattr(owner, method, original)
    if attack == "ap-t":  # the trained surrogate is reloaded, not retrained
        monkeypatch.setattr(Trainer, "train_step", _boom)
    progress = load_checkpoint(tmp_path / STATE_FILE)
    assert progress["round" if attack == "ue-s" else "next"] >= 1
    resumed = generate_poison(spec_of(attack, **SMALL[attack]), small.images, small.labels, small.index,
                              workdir=tmp_path, progress=False)
    assert torch.equal(resumed.delta, made_small(attack).delta)


def test_ue_crafts_as_the_official_code(data):
    """The official surrogate sees [0, 1] pixels (no normalisation), clips its gradient norm at 5 and keeps
    its learning rate; ue-c starts at zero and trains its surrogate on all the data, not only the subset."""
    spec = spec_of("ue-c")
    p = scaled_params(spec, BUDGETS)
    mm = _MinMin(spec, p, data.num_classes, 32, torch.device("cpu"), len(data.labels))
    assert (mm.trainer.config.grad_clip, mm.trainer.config.final_lr_ratio) == (5.0, 1.0)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(mm.normalize(x), x)
    ue_c = UnlearnableClasswise()
    assert torch.equal(ue_c.initial_delta(spec, p, (10, 3, 32, 32)), torch.zeros(10, 3, 32, 32))
    seen = []
    original = _MinMin.train
    try:
        _MinMin.train = lambda self, images, labels, delta_of: seen.append(len(labels)) or 0.0
        generate_poison(spec_of("ue-c", max_rounds=1), data.images, data.labels, data.index, progress=False)
    finally:
        _MinMin.train = original
    assert seen == [len(data.labels)]  # the whole data set, while the noise is crafted on half of it
