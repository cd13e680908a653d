"""AUE and AAP (issue 36) at the smoke scale: the bound, the effect each has on its own surrogate, the
authors' strength per data set, parameter ranges, and resuming an interrupted AUE."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attacks import AttackParamError, generate_poison
from attacks.adversarial import SURROGATE_FILE
from attacks.spec import AttackSpec
from attacks.unlearnable import STATE_FILE, build_surrogate
from benchmark.data import load_dataset
from victims.augment import eval_transform
from victims.train import Trainer, load_checkpoint


# their surrogates learn little on 160 generated images in the smoke budgets: more rounds and epochs show the effect
PARAMS = {"aue": {"rounds": 10}, "aap": {"surrogate_epochs": 10}}


def spec_of(attack: str, dataset: str = "cifar10", **params) -> AttackSpec:
    return AttackSpec(attack, dataset, "supervised", "resnet18", params=params, scale="smoke")


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", "train", per_class=16, image_size=32)


@pytest.fixture(scope="module")
def made(data, tmp_path_factory):
    cache = {}

    def make(attack: str):
        if attack not in cache:
            work = tmp_path_factory.mktemp(attack)
            cache[attack] = generate_poison(spec_of(attack, **PARAMS[attack]), data.images, data.labels, data.index, workdir=work,
                                            progress=False), work
        return cache[attack]

    return make


def surrogate_logits(attack: str, work, num_classes: int):
    model, _, _ = build_surrogate(spec_of(attack), num_classes, 32)
    state = load_checkpoint(work / (STATE_FILE if attack == "aue" else SURROGATE_FILE))
    model.load_state_dict(state["trainer"]["algorithm"])
    model.eval()
    raw = eval_transform(32, "raw")  # both see [0, 1] pixels, as the authors' surrogates
    return lambda images: model.logits(raw(images)).detach()


@pytest.mark.parametrize("attack", ["aue", "aap"])
def test_the_poison_is_bounded_and_real(attack, made, data):
    poison, _ = made(attack)
    assert poison.delta.dtype == torch.int8 and poison.eps_pixels == 8 and int(poison.delta.abs().max()) <= 8
    assert poison.delta.shape == data.images.shape and poison.delta.float().abs().mean() > 1.0


def test_aue_lowers_its_surrogate_s_error_and_aap_pushes_towards_the_next_class(made, data):
    poison, work = made("aue")
    logits = surrogate_logits("aue", work, data.num_classes)
    clean = F.cross_entropy(logits(data.images), data.labels)
    poisoned = F.cross_entropy(logits(poison.apply(data.images, data.labels, data.index)), data.labels)
    assert poisoned < clean - 0.05, (float(clean), float(poisoned))
    assert len(load_checkpoint(work / STATE_FILE)["history"]) == 10
    poison, work = made("aap")
    logits = surrogate_logits("aap", work, data.num_classes)
    target = (data.labels + 1) % data.num_classes
    hits = [(logits(x).argmax(1) == target).float().mean() for x in
            (data.images, poison.apply(data.images, data.labels, data.index))]
    assert hits[1] > hits[0] + 0.05, hits


def test_the_strength_is_the_authors_per_data_set_and_checked():
    from attacks import ATTACKS
    assert ATTACKS.get("aue")().params(spec_of("aue"))["strength"] == 0.6
    assert ATTACKS.get("aue")().params(spec_of("aue", "cifar100"))["strength"] == 1.0
    assert ATTACKS.get("aap")().params(spec_of("aap"))["strength"] == 0.4
    assert ATTACKS.get("aap")().params(spec_of("aap", strength=0.7))["strength"] == 0.7
    for attack, bad, message in (("aue", {"strength": 1.5}, r"strength must be in \(0, 1\]"),
                                 ("aap", {"pgd_steps": 0}, "positive integer"),
                                 ("aue", {"restarts": 2}, "valid parameters")):
        with pytest.raises(AttackParamError, match=message):
            ATTACKS.get(attack)().params(spec_of(attack, **bad))


def test_an_interrupted_aue_resumes_to_the_same_poison(data, tmp_path, monkeypatch):
    straight = generate_poison(spec_of("aue"), data.images, data.labels, data.index, progress=False)
    original, calls = Trainer.train_step, []
    per_round = -(-len(data.labels) // 64)  # every batch of 64, the last partial one included

    def fails_in_the_second_round(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == per_round + 1:
            raise KeyboardInterrupt("pre-empted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "train_step", fails_in_the_second_round)
    with pytest.raises(KeyboardInterrupt):
        generate_poison(spec_of("aue"), data.images, data.labels, data.index, workdir=tmp_path, progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    assert load_checkpoint(tmp_path / STATE_FILE)["round"] == 1
    resumed = generate_poison(spec_of("aue"), data.images, data.labels, data.index, workdir=tmp_path,
                              progress=False)
    assert torch.equal(resumed.delta, straight.delta)
