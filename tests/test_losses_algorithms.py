"""Losses against naive references; algorithms: gradients to the views, the dual-branch flag."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from victims.algorithms import ALGORITHMS, build_algorithm
from victims.architectures import build_architecture
from victims.losses import alignment, info_nce_queue, negative_cosine, nt_xent, uniformity
from victims.registry import UnknownNameError


def naive_nt_xent(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        pos = z[i] @ z[j] / t
        total = total - (pos - torch.logsumexp(sims, 0))
    return total / (2 * n)


def test_nt_xent_matches_the_definition():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    assert torch.allclose(nt_xent(z1, z2, 0.5), naive_nt_xent(z1, z2, 0.5), atol=1e-5)
    # identical views with spread-out embeddings give a low loss; random pairs a high one
    assert nt_xent(z1, z1, 0.1) < nt_xent(z1, z2, 0.1)


def test_info_nce_queue_and_negative_cosine():
    torch.manual_seed(1)
    q, k, queue = torch.randn(4, 8), torch.randn(4, 8), F.normalize(torch.randn(16, 8), dim=1)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    expected = torch.stack([-(qn[i] @ kn[i] / 0.2 - torch.logsumexp(torch.cat([(qn[i] @ kn[i]).view(1), queue @ qn[i]]) / 0.2, 0))
                            for i in range(4)]).mean()
    assert torch.allclose(info_nce_queue(q, k, queue, 0.2), expected, atol=1e-5)
    assert torch.allclose(negative_cosine(q, q), torch.tensor(-1.0), atol=1e-6)  # the official -cos
    assert torch.allclose(negative_cosine(q, -q), torch.tensor(1.0), atol=1e-6)
    assert alignment(q, q) < 1e-10 and uniformity(q) < 0


def _algorithm(name: str):
    torch.manual_seed(0)
    settings = {"moco": {"queue_size": 32, "out_dim": 16}, "byol": {"hidden_dim": 32, "out_dim": 16},
                "simclr": {"out_dim": 16}}.get(name, {})
    return build_algorithm(name, build_architecture("resnet18", width=0.125), 10, **settings)


def _views():
    torch.manual_seed(2)
    return torch.rand(8, 3, 32, 32, requires_grad=True), torch.rand(8, 3, 32, 32, requires_grad=True)


@pytest.mark.parametrize("name", ["simclr", "moco"])
def test_gradient_reaches_both_views_with_dual_branch(name):
    algorithm = _algorithm(name)
    v1, v2 = _views()
    algorithm.pair_loss(v1, v2, dual_branch=True).backward()
    for v in (v1, v2):
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_moco_key_branch_carries_gradient_only_with_the_flag():
    algorithm = _algorithm("moco")
    v1, v2 = _views()
    algorithm.pair_loss(v1, v2, dual_branch=False).backward()
    assert v1.grad.abs().sum() > 0 and v2.grad is None  # the key view only enters the momentum branch
    assert all(p.grad is None for p in algorithm.key_encoder.parameters())


def test_byol_target_is_detached_as_officially_unless_target_gradient_is_on():
    grads = {}
    for target_gradient in (False, True):
        algorithm = _algorithm("byol")
        algorithm.target_gradient = target_gradient
        v1, v2 = _views()
        algorithm.pair_loss(v1, v2, dual_branch=True).backward()
        grads[target_gradient] = v1.grad.clone()
    assert _algorithm("byol").target_gradient is False  # the default: the official loss detaches the target
    # the online path is the same; the difference is the gradient through the target branch
    assert (grads[True] - grads[False]).abs().sum() > 1e-3 * grads[False].abs().sum()
    assert all(p.grad is None for p in algorithm.target_encoder.parameters())


class Flat(torch.nn.Module):
    """An 'encoder' that hands its input on: the losses are then computed on fixed embeddings."""

    feature_dim = 6

    def forward(self, x):
        return x


def on_fixed_embeddings(name: str, **settings):
    algorithm = build_algorithm(name, Flat(), 0, out_dim=6, **settings)
    algorithm.head = torch.nn.Identity()
    if name == "moco":
        algorithm.key_head = torch.nn.Identity()
    return algorithm


def official_simclr(z1, z2, t, base=0.07):
    """losses.py SimCLRLoss (contrast_mode 'all', no labels), written out anchor by anchor."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        logits = torch.stack([z[i] @ z[k] / t for k in range(2 * n) if k != i])
        total = total - (t / base) * (z[i] @ z[(i + n) % (2 * n)] / t - torch.logsumexp(logits, 0))
    return total / (2 * n)


def test_simclr_loss_is_the_official_scaled_loss_with_a_quarter_of_its_gradient():
    torch.manual_seed(3)
    z1, z2 = torch.randn(5, 6, requires_grad=True), torch.randn(5, 6, requires_grad=True)
    loss = on_fixed_embeddings("simclr").pair_loss(z1, z2)
    reference = official_simclr(z1, z2, 0.5)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 / 0.07 * nt_xent(z1, z2, 0.5).item(), rel=1e-5)
    (g_ours,) = torch.autograd.grad(loss, z1)
    (g_ref,) = torch.autograd.grad(reference, z1)
    assert torch.allclose(g_ours, 0.25 * g_ref, atol=1e-6)
    # the textbook loss, with its full gradient, is one setting away
    plain = on_fixed_embeddings("simclr", base_temperature=None, gradient_share=1.0).pair_loss(z1, z2)
    assert plain.item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-6)


def test_moco_loss_is_scaled_by_temperature_over_0_07():
    torch.manual_seed(4)
    moco = on_fixed_embeddings("moco", queue_size=10)
    queue = moco.queue.clone()
    q, k = torch.randn(5, 6), torch.randn(5, 6)
    loss = moco.pair_loss(q, k)
    assert loss.item() == pytest.approx(0.2 / 0.07 * info_nce_queue(q, k, queue, 0.2).item(), rel=1e-5)
    plain = on_fixed_embeddings("moco", queue_size=10, base_temperature=None)
    plain.queue.copy_(queue)
    assert plain.pair_loss(q, k).item() == pytest.approx(info_nce_queue(q, k, queue, 0.2).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["simclr", "moco"])
def test_simclr_and_moco_heads_have_no_batch_norm_and_byol_s_do(name):
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in _algorithm(name).head.modules())
    byol = _algorithm("byol")
    for head in (byol.projector, byol.predictor):
        assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]


def _moved(target, online_before):
    return any(not torch.equal(p, q) for p, q in zip(target.parameters(), online_before))


def test_moco_moves_its_key_encoder_and_enqueues_at_every_forward_perturbation_steps_included():
    moco = _algorithm("moco")
    with torch.no_grad():  # make the query encoder differ from the key encoder
        for p in moco.encoder.parameters():
            p.add_(0.1)
    moco.eval()
    before = [p.clone() for p in moco.key_encoder.parameters()]
    v1, v2 = _views()
    moco.pair_loss(v1, v2, dual_branch=True)  # as in an attack's perturbation step: eval mode, no optimiser
    assert _moved(moco.key_encoder, before) and int(moco.queue_ptr) == 8
    stepwise = _algorithm("moco")
    stepwise.state_updates = "step"
    with torch.no_grad():
        for p in stepwise.encoder.parameters():
            p.add_(0.1)
    before = [p.clone() for p in stepwise.key_encoder.parameters()]
    stepwise.pair_loss(v1, v2)
    assert not _moved(stepwise.key_encoder, before) and int(stepwise.queue_ptr) == 0
    stepwise.on_step_end()
    assert _moved(stepwise.key_encoder, before) and int(stepwise.queue_ptr) == 8


def test_byol_moves_its_target_twice_per_loss_and_keeps_its_own_batch_norm_statistics():
    byol = _algorithm("byol")
    with torch.no_grad():
        for p in byol.encoder.parameters():
            p.add_(0.1)
        byol.encoder.apply(lambda m: m.running_mean.add_(1.0) if isinstance(m, torch.nn.BatchNorm2d) else None)
    online = [p.clone() for p in byol.encoder.parameters()]
    target = [p.clone() for p in byol.target_encoder.parameters()]
    byol.eval()
    byol.pair_loss(*_views())
    m = byol.momentum
    for t0, o, t1 in zip(target, online, byol.target_encoder.parameters()):
        once = t0 * m + o * (1 - m)
        assert torch.allclose(t1, once * m + o * (1 - m), atol=1e-6)
    # the EMA moves parameters only: the target's running statistics stay its own
    bn = [m for m in byol.target_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.allclose(b.running_mean, torch.zeros_like(b.running_mean)) for b in bn)


def test_supervised_uses_labels_and_has_no_pair_loss():
    algorithm = _algorithm("supervised")
    v1, _ = _views()
    loss = algorithm(v1, labels=torch.arange(8) % 10)
    assert loss.item() > 0
    with pytest.raises(TypeError):
        algorithm.pair_loss(v1, v1)


def test_registry_lists_algorithms():
    assert ALGORITHMS.names() == ["simclr", "moco", "byol", "supervised", "simsiam", "barlow_twins"]
    with pytest.raises(UnknownNameError, match="simclr, moco, byol, supervised, simsiam, barlow_twins"):
        ALGORITHMS.get("swav")


def test_moco_queue_must_be_a_multiple_of_the_batch():
    algorithm = _algorithm("moco")
    with pytest.raises(ValueError, match="multiple of the global batch"):
        algorithm.enqueue(torch.randn(5, 16))
    algorithm.enqueue(torch.ones(8, 16))
    assert int(algorithm.queue_ptr) == 8 and torch.allclose(algorithm.queue[:8].norm(dim=1), torch.ones(8))
