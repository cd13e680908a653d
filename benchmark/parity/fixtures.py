"""What both sides of a step-level comparison are given: small seeded inputs, a tiny network, fixed views, and
the map between our parameter names and the authors'. Imported by the reference's subprocess too, so it
needs nothing but torch.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

WIDTH = 0.03125  # our ResNet-18 at 1/32 width: 2-4-8-16 channels, 16-d features (~11k parameters)
SIDE, BATCH, BATCHES, CLASSES = 16, 8, 2, 4
HEADS = {"out_dim": 16, "byol_hidden": 32, "moco_queue": 32, "momentum": 0.99}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # CIFAR-10, as their AttackModel normalises
SEED = 1112


def inputs(seed: int = SEED) -> dict[str, torch.Tensor]:
    """uint8 images (BATCH * BATCHES, 3, SIDE, SIDE) in 16..239, labels cycling over CLASSES, sample ids, and an initial
    delta on our grid (integers k in [-120, 120]: k / 120 in their [-1, 1] units, k / 15 pixels in ours)."""
    g = torch.Generator().manual_seed(seed)
    n = BATCH * BATCHES
    # pixels 16..239: no poisoned pixel reaches 0 or 255, where an ulp between their x + eps * d and our
    # x + px / 255 decides whether the clamp passes the gradient (with 0..255, 0.4-0.7% of the entries)
    images = torch.randint(16, 240, (n, 3, SIDE, SIDE), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % CLASSES
    units_sample = torch.randint(-120, 121, (n, 3, SIDE, SIDE), generator=g, dtype=torch.int16)
    units_class = torch.randint(-120, 121, (CLASSES, 3, SIDE, SIDE), generator=g, dtype=torch.int16)
    return {"images": images, "labels": labels, "index": torch.arange(n), "units_sample": units_sample,
            "units_class": units_class}


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' bytes in name order: a golden says which inputs it was made from."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class FixedViews(nn.Module):
    """Two deterministic, differentiable 'augmentations' that both sides apply alike (the random crop, flip
    and jitter draws of the real pipelines differ between kornia and kornia-pil and are compared apart):
    view v of image i is flipped when flip[v, i], scaled by gain[v, i] per channel, clamped, normalised.

    Called on 2B images (ours: both views of a batch at once) it returns view 1 of the first half and view 2
    of the second; called on B images (theirs: `self.transform(x)` twice per forward) it alternates."""

    def __init__(self, batch: int = BATCH, seed: int = SEED + 1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.flip = torch.rand(2, batch, generator=g) < 0.5
        self.gain = 0.6 + 0.8 * torch.rand(2, batch, 3, generator=g)
        self.batch, self.calls = batch, 0

    def view(self, x: torch.Tensor, v: int) -> torch.Tensor:
        x = torch.where(self.flip[v][:, None, None, None], x.flip(-1), x)
        x = (x * self.gain[v][:, :, None, None]).clamp(0, 1)
        mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
        return (x - mean) / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 2 * self.batch:
            a, b = x.chunk(2)
            return torch.cat([self.view(a, 0), self.view(b, 1)])
        v, self.calls = self.calls % 2, self.calls + 1
        return self.view(x, v)


# our state-dict prefixes -> theirs (their AttackModel holds the algorithm as `backbone`)
PREFIXES = {
    "simclr": [("encoder.", "backbone.encoder."), ("head.", "backbone.head.")],
    "moco": [("key_encoder.", "backbone.encoder_k.encoder."), ("key_head.", "backbone.encoder_k.head."),
             ("encoder.", "backbone.encoder_q.encoder."), ("head.", "backbone.encoder_q.head."),
             ("queue_ptr", "backbone.queue_ptr"), ("queue", "backbone.queue")],
    "byol": [("target_encoder.", "backbone.momentum_backbone.encoder."),
             ("target_projector.", "backbone.momentum_projection_head."),
             ("encoder.", "backbone.backbone.encoder."), ("projector.", "backbone.projection_head."),
             ("predictor.", "backbone.prediction_head.")],
}


def rename(name: str, pairs: list[tuple[str, str]]) -> str:
    for a, b in pairs:
        if name.startswith(a):
            return b + name[len(a):]
    raise KeyError(f"no counterpart for {name!r}")


def to_theirs(algorithm: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our algorithm's state dict in their names (MoCo's queue (K, d) becomes their (d, K), its pointer (1,))."""
    out = {}
    for name, t in state.items():
        if algorithm == "moco" and name == "queue":
            t = t.T.contiguous()
        if algorithm == "moco" and name == "queue_ptr":
            t = t.reshape(1)
        out[rename(name, PREFIXES[algorithm])] = t
    return out


def from_theirs(algorithm: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their state dict (or gradients) in our names; entries with no counterpart (their delta) are dropped."""
    back = [(b, a) for a, b in PREFIXES[algorithm]]
    out = {}
    for name, t in state.items():
        try:
            ours = rename(name, back)
        except KeyError:
            continue
        if algorithm == "moco" and ours == "queue":
            t = t.T.contiguous()
        if algorithm == "moco" and ours == "queue_ptr":
            t = t.reshape(())
        out[ours] = t
    return out
