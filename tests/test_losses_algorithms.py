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
    assert torch.allclose(negative_cosine(q, q), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(negative_cosine(q, -q), torch.tensor(4.0), atol=1e-6)
    assert alignment(q, q) < 1e-10 and uniformity(q) < 0


def _algorithm(name: str):
    torch.manual_seed(0)
    settings = {"moco": {"queue_size": 32, "out_dim": 16}, "byol": {"hidden_dim": 32, "out_dim": 16},
                "simclr": {"out_dim": 16}}.get(name, {})
    return build_algorithm(name, build_architecture("resnet18", width=0.125), 10, **settings)


def _views():
    torch.manual_seed(2)
    return torch.rand(8, 3, 32, 32, requires_grad=True), torch.rand(8, 3, 32, 32, requires_grad=True)


@pytest.mark.parametrize("name", ["simclr", "moco", "byol"])
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


def test_byol_target_branch_carries_gradient_only_with_the_flag():
    algorithm = _algorithm("byol")
    grads = {}
    for dual in (False, True):
        v1, v2 = _views()
        algorithm.pair_loss(v1, v2, dual_branch=dual).backward()
        grads[dual] = v1.grad.clone()
    # the online path is the same; the difference is the gradient through the target branch
    assert (grads[True] - grads[False]).abs().sum() > 1e-3 * grads[False].abs().sum()
    assert all(p.grad is None for p in algorithm.target_encoder.parameters())


def test_supervised_uses_labels_and_has_no_pair_loss():
    algorithm = _algorithm("supervised")
    v1, _ = _views()
    loss = algorithm(v1, labels=torch.arange(8) % 10)
    assert loss.item() > 0
    with pytest.raises(TypeError):
        algorithm.pair_loss(v1, v1)


def test_registry_lists_algorithms():
    assert ALGORITHMS.names() == ["simclr", "moco", "byol", "supervised"]
    with pytest.raises(UnknownNameError, match="simclr, moco, byol, supervised"):
        ALGORITHMS.get("swav")


def test_moco_queue_must_be_a_multiple_of_the_batch():
    algorithm = _algorithm("moco")
    with pytest.raises(ValueError, match="multiple of the global batch"):
        algorithm.enqueue(torch.randn(5, 16))
    algorithm.enqueue(torch.ones(8, 16))
    assert int(algorithm.queue_ptr) == 8 and torch.allclose(algorithm.queue[:8].norm(dim=1), torch.ones(8))
