"""Self-supervised losses as pure functions of embeddings (no modules, no state)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather_with_grad, is_distributed, rank, world_size


def wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (a bfloat16 forward's embeddings are upcast; float64 stays float64)."""
    return t if t.dtype == torch.float64 else t.float()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over the two views' embeddings; under DDP the negatives come from every process.

    Each local anchor is scored against all 2N global embeddings (itself excluded); the loss is the
    mean over the local anchors, so DDP's gradient averaging yields the global-batch gradient.
    """
    z1, z2 = F.normalize(wide(z1), dim=1), F.normalize(wide(z2), dim=1)
    n_local = z1.shape[0]
    all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
    n_global = all1.shape[0]
    candidates = torch.cat([all1, all2])  # (2N, d)
    anchors = torch.cat([z1, z2])  # (2n, d)
    logits = anchors @ candidates.T / temperature
    offset = rank() * n_local
    own = torch.arange(n_local, device=z1.device) + offset
    self_index = torch.cat([own, own + n_global])
    positive = torch.cat([own + n_global, own])
    logits[torch.arange(2 * n_local, device=z1.device), self_index] = float("-inf")
    return F.cross_entropy(logits, positive)


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: the positive is the key of the same image, the negatives are the queue (K, d)."""
    q, k = F.normalize(wide(q), dim=1), F.normalize(wide(k), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.T.to(q.dtype)
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss as the official CP code has it: -cos(p, z), averaged (in [-1, 1]; the
    gradient is half that of BYOL's paper form 2 - 2 cos). Gradient reaches z unless the caller detaches it."""
    return -F.cosine_similarity(wide(p), wide(z), dim=1).mean()


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, *, lamb: float = 0.0051,
                      scale_loss: float = 0.1) -> torch.Tensor:
    """Barlow Twins (Zbontar et al., 2021) as solo-learn has it (solo/losses/barlow.py:42-60): each view's
    embedding standardised over the batch (a BatchNorm1d without affine, batch statistics), their cross-
    correlation C = z1n^T z2n / N, and `scale_loss` * [sum_i (1 - C_ii)^2 + `lamb` * sum_{i != j} C_ij^2]."""
    z1, z2 = wide(z1), wide(z2)
    n = z1.shape[0]
    z1 = F.batch_norm(z1, None, None, training=True)
    z2 = F.batch_norm(z2, None, None, training=True)
    c = z1.T @ z2 / n
    if is_distributed():  # solo-learn: the processes' correlations averaged (per-process standardisation)
        import torch.distributed.nn.functional as dist_fn
        c = dist_fn.all_reduce(c) / world_size()
    on = torch.diagonal(c)
    off = c.pow(2).sum() - on.pow(2).sum()
    return scale_loss * ((1 - on).pow(2).sum() + lamb * off)


def temperature_scale(temperature: float, base_temperature: float | None) -> float:
    """The SupCon-style factor temperature / base_temperature of the official SimCLR and MoCo losses
    (1 without a base temperature: the textbook loss)."""
    if base_temperature is None:
        return 1.0
    if base_temperature <= 0:
        raise ValueError(f"base_temperature must be positive or None, got {base_temperature}")
    return temperature / base_temperature


def scale_gradient(loss: torch.Tensor, share: float) -> torch.Tensor:
    """`loss` with its value unchanged and its gradient multiplied by `share`."""
    if share == 1.0:
        return loss
    return loss * share + (loss * (1.0 - share)).detach()


def alignment(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Wang & Isola's alignment: mean squared distance between normalised positive pairs."""
    return (F.normalize(z1.float(), dim=1) - F.normalize(z2.float(), dim=1)).pow(2).sum(1).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola's uniformity: log of the mean Gaussian potential between normalised embeddings."""
    z = F.normalize(z.float(), dim=1)
    return torch.pdist(z).pow(2).mul(-t).exp().mean().log()
