"""TUE (issue 36): the CSD loss against its definition, the noise growing class-separable, resuming."""
from __future__ import annotations

import pytest
import torch

from attacks import AttackParamError, generate_poison
from attacks.spec import AttackSpec
from attacks.tue import csd_loss
from attacks.unlearnable import STATE_FILE
from benchmark.data import load_dataset
from victims.train import load_checkpoint


def naive_csd(delta, labels):
    flat = delta.flatten(1)
    ks = sorted(set(labels.tolist()))
    c = {k: flat[labels == k].mean(0) for k in ks}
    s = {k: sum((flat[i] - c[k]).norm() for i in range(len(labels)) if labels[i] == k) / int((labels == k).sum())
         for k in ks}
    terms = [(s[i] + s[j] + 1e-5) / ((c[i] - c[j]).norm() + 1e-5) for i in ks for j in ks if i != j]
    return sum(terms) / len(terms)


def test_csd_matches_its_definition_and_its_spread_takes_no_gradient():
    torch.manual_seed(0)
    delta, labels = torch.randn(12, 3, 2, 2, requires_grad=True), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0])
    loss = csd_loss(delta, labels)
    assert loss.item() == pytest.approx(float(naive_csd(delta.detach(), labels)), rel=1e-5)
    loss.backward()
    # the spread is detached: moving every noise of a class by the same offset changes only the centres' distances
    g = delta.grad.flatten(1)
    for k in range(4):
        rows = g[labels == k]
        assert torch.allclose(rows, rows[0].expand_as(rows), atol=1e-6)
    assert csd_loss(delta, torch.zeros(12, dtype=torch.long)).item() == 0.0


def spec_of(**params) -> AttackSpec:
    return AttackSpec("tue", "cifar10", params=params, scale="smoke")


def test_the_noise_becomes_class_separable_within_the_bound(tmp_path):
    data = load_dataset("synthetic", "train", per_class=16, image_size=32)
    poison = generate_poison(spec_of(), data.images, data.labels, data.index, workdir=tmp_path, progress=False)
    assert poison.delta.dtype == torch.int8 and int(poison.delta.abs().max()) <= 8
    start = (torch.rand(data.images.shape, generator=torch.Generator().manual_seed(1112)) * 2 - 1) * 8
    assert csd_loss(poison.delta.float(), data.labels) < 0.5 * csd_loss(start, data.labels)
    history = load_checkpoint(tmp_path / STATE_FILE)["history"]
    assert len(history) == 2 and history[-1]["csd"] < history[0]["csd"]


def test_an_interrupted_tue_resumes_to_the_same_poison(tmp_path, monkeypatch):
    import attacks.tue as tue
    data = load_dataset("synthetic", "train", per_class=8, image_size=32)
    straight = generate_poison(spec_of(), data.images, data.labels, data.index, progress=False)
    original, calls = tue.csd_loss, []

    def fails_in_the_second_pass(*args):
        calls.append(1)
        if len(calls) > 2 * 5:  # 2 batches of 64 x 5 steps in the first pass
            raise KeyboardInterrupt("pre-empted")
        return original(*args)

    monkeypatch.setattr(tue, "csd_loss", fails_in_the_second_pass)
    with pytest.raises(KeyboardInterrupt):
        generate_poison(spec_of(), data.images, data.labels, data.index, workdir=tmp_path, progress=False)
    monkeypatch.setattr(tue, "csd_loss", original)
    assert load_checkpoint(tmp_path / STATE_FILE)["pass"] == 1
    resumed = generate_poison(spec_of(), data.images, data.labels, data.index, workdir=tmp_path, progress=False)
    assert torch.equal(resumed.delta, straight.delta)
    with pytest.raises(AttackParamError, match="num_steps must be a positive integer"):
        generate_poison(spec_of(num_steps=0), data.images, data.labels, data.index, progress=False)
