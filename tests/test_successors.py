"""SimSiam and Barlow Twins (issue 36): their losses against naive definitions, the stop-gradient, the heads,
solo-learn's LARS and per-view pipelines, the predictor's constant learning rate, and training on smoke data."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.data import make_synthetic
from victims.algorithms import ALGORITHMS, build_algorithm, contrastive_algorithms, table_algorithms
from victims.architectures import build_architecture
from victims.augment import PerView
from victims.lars import LARS
from victims.losses import barlow_twins_loss
from victims.recipes import model_settings
from victims.train import TrainConfig, Trainer, fit


def naive_barlow(z1, z2, lamb, scale):
    n, d = z1.shape
    s1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
    s2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(s1[b, i] * s2[b, j] for b in range(n)) / n
            total = total + ((1 - c) ** 2 if i == j else lamb * c ** 2)
    return scale * total


def test_barlow_twins_loss_matches_the_definition_and_ignores_each_columns_scale():
    torch.manual_seed(0)
    z1, z2 = torch.randn(7, 5), torch.randn(7, 5)
    loss = barlow_twins_loss(z1, z2, lamb=0.3, scale_loss=0.1)
    assert loss.item() == pytest.approx(float(naive_barlow(z1, z2, 0.3, 0.1)), rel=1e-5)
    # each embedding dimension is standardised over the batch first
    scaled = barlow_twins_loss(z1 * torch.tensor([1, 10, 0.1, 3, 7.0]) + 4, z2, lamb=0.3, scale_loss=0.1)
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-3)
    # identical decorrelated views: no loss left (the identity cross-correlation)
    q, _ = torch.linalg.qr(torch.randn(64, 5))
    z = (q - q.mean(0)) * 8
    assert barlow_twins_loss(z, z, lamb=0.0051, scale_loss=1.0).item() < 0.05 < loss.item()


def _simsiam(**kw):
    torch.manual_seed(0)
    return build_algorithm("simsiam", build_architecture("resnet18", width=0.125), 10,
                           **{"hidden_dim": 32, "out_dim": 32, "pred_dim": 8, **kw})


def test_simsiam_heads_are_the_authors_and_the_predictor_keeps_a_static_rate():
    model = _simsiam()
    last_linear, last_bn = model.projector[6], model.projector[7]
    assert not last_bn.affine and not last_linear.bias.requires_grad  # builder.py:35-36
    assert model.projector[0].bias is None and model.predictor[0].bias is None
    groups = model.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(ids) == sorted(trainable) and len(ids) == len(set(ids))
    assert [bool(g.get("static_lr")) for g in groups] == [False, True]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.predictor.parameters()}


def test_simsiam_stops_the_gradient_through_the_target_unless_an_attack_asks_for_it():
    torch.manual_seed(1)
    v1, v2 = torch.rand(8, 3, 32, 32), torch.rand(8, 3, 32, 32)

    def projector_grad(**kw) -> torch.Tensor:
        model = _simsiam(**kw)
        model.train()
        loss = model.pair_loss(v1, v2, dual_branch=True)
        loss.backward()
        return model.projector[0].weight.grad.clone()

    stopped, through = projector_grad(), projector_grad(target_gradient=True)
    assert not torch.allclose(stopped, through)  # the target branch adds a gradient when asked
    model = _simsiam()
    x = torch.rand(8, 3, 32, 32, requires_grad=True)
    loss = model.pair_loss(x, x.detach())  # the second view a constant: its target takes no gradient anyway
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lars_follows_solo_learn_and_with_the_ratio_clipped_at_one_is_sgd():
    torch.manual_seed(0)
    w, b = torch.randn(4, 3), torch.randn(4)
    gw, gb = torch.randn(4, 3), torch.randn(4)
    p_w, p_b = nn.Parameter(w.clone()), nn.Parameter(b.clone())
    opt = LARS([p_w, p_b], lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.02, clip=True, exclude_1d=True)
    p_w.grad, p_b.grad = gw.clone(), gb.clone()
    opt.step()
    ratio = min(0.02 * w.norm() / (gw.norm() + 1e-4 * w.norm() + 1e-8) / 0.3, 1.0)
    assert torch.allclose(p_w, w - 0.3 * ratio * (gw + 1e-4 * w))
    assert torch.allclose(p_b, b - 0.3 * gb)  # a 1-D tensor: neither the ratio nor weight decay
    # a huge trust coefficient clips every ratio at 1: torch's SGD with the same weight decay, step for step
    p1, p2 = nn.Parameter(w.clone()), nn.Parameter(w.clone())
    lars = LARS([p1], lr=0.1, momentum=0.9, weight_decay=1e-3, eta=1e6, clip=True)
    sgd = torch.optim.SGD([p2], lr=0.1, momentum=0.9, weight_decay=1e-3)
    for step in range(3):
        g = torch.randn(4, 3, generator=torch.Generator().manual_seed(step))
        p1.grad, p2.grad = g.clone(), g.clone()
        lars.step()
        sgd.step()
    assert torch.allclose(p1, p2, atol=1e-6)


def test_per_view_pipelines_give_each_repeat_its_own_pipeline():
    class Times(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            return x * self.k

    x = torch.rand(3, 3, 4, 4)
    out = PerView(Times(1.0), Times(2.0))(x.repeat(2, 1, 1, 1))
    assert torch.equal(out[:3], x) and torch.equal(out[3:], x * 2)
    with pytest.raises(ValueError, match="repeated once per view"):
        PerView(Times(1.0), Times(2.0))(x)


def test_the_predictor_keeps_the_base_rate_through_the_warm_up():
    model = _simsiam()
    config = TrainConfig(epochs=4, batch_size=8, lr=0.5, warmup_epochs=2, warmup_start_lr=3e-5,
                         final_lr_ratio=0.0, lr_schedule="step", channels_last=False)
    trainer = Trainer(model, config, model.augmentation(32, "synthetic"), "cpu", steps_per_epoch=4)
    trainer.train_step(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.zeros(8, dtype=torch.long))
    rates = [g["lr"] for g in trainer.optimizer.param_groups]
    assert rates == [pytest.approx(3e-5), 0.5]


def test_the_successors_are_registered_victims_with_recipes_at_every_scale():
    assert {"simsiam", "barlow_twins"} <= set(contrastive_algorithms())
    assert not {"simsiam", "barlow_twins"} & set(table_algorithms())
    for scale in ("smoke", "mini", "paper"):
        settings = model_settings(scale)
        assert settings.train["barlow_twins"].optimizer == "lars" and settings.train["simsiam"].optimizer == "sgd"
    assert ALGORITHMS.get("barlow_twins").augmentation(32, "cifar10").__class__ is PerView


@pytest.mark.parametrize("name", ["simsiam", "barlow_twins"])
def test_loss_falls_on_smoke_data_with_its_recipe(name):
    data = make_synthetic("train", per_class=16)
    settings = model_settings("smoke")
    torch.manual_seed(0)
    model = build_algorithm(name, build_architecture("resnet18", width=0.125), 10,
                            **settings.algorithm_settings[name])
    config = TrainConfig(**{**settings.train[name].__dict__, "epochs": 5, "batch_size": 32, "warmup_epochs": 1})
    losses = [h["loss"] for h in fit(model, data.images, data.labels, config, model.augmentation(32, "synthetic"),
                                     progress=False).history]
    assert losses[-1] < losses[0] - 0.02, losses
