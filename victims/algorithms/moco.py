"""MoCo v2 (Chen et al., 2020): a momentum key encoder, a queue of negatives, an MLP head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_no_grad, world_size
from ..losses import info_nce_queue, temperature_scale, wide
from .base import MomentumAlgorithm, mlp, momentum_copy


class MoCo(MomentumAlgorithm):
    """`base_temperature` scales the loss by temperature / base_temperature (official: 0.07; None: the
    textbook loss); `state_updates` says when the key encoder moves and the keys are enqueued
    (see MomentumAlgorithm)."""

    name = "moco"

    def __init__(self, encoder: nn.Module, num_classes: int = 0, *, temperature: float = 0.2,
                 queue_size: int = 4096, momentum: float = 0.99, hidden_dim: int | None = None, out_dim: int = 128,
                 head_batch_norm: bool = False, base_temperature: float | None = 0.07,
                 state_updates: str = "forward"):
        super().__init__(encoder, momentum, state_updates)
        self.temperature = temperature
        self.loss_scale = temperature_scale(temperature, base_temperature)
        self.head = mlp([self.feature_dim, hidden_dim or self.feature_dim, out_dim], batch_norm=head_batch_norm)
        self.key_encoder, self.key_head = momentum_copy(self.encoder), momentum_copy(self.head)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys: torch.Tensor | None = None

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.key_encoder, self.encoder), (self.key_head, self.head)]

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(views))

    def keys(self, views: torch.Tensor) -> torch.Tensor:
        return self.key_head(self.key_encoder(views))

    def pair_loss(self, view1: torch.Tensor, view2: torch.Tensor, *, dual_branch: bool = False) -> torch.Tensor:
        """Query from view1, key from view2 through the momentum encoder. With `dual_branch` the key is
        not detached, so the gradient also reaches view2 through the momentum branch."""
        self.forward_update()
        q = self.embed(view1)
        if dual_branch:
            k = self.keys(view2)
        else:
            with torch.no_grad():
                k = self.keys(view2)
        loss = self.loss_scale * info_nce_queue(q, k, self.queue.clone(), self.temperature)
        if self.state_updates == "forward":
            self.enqueue(gather_no_grad(k.detach()))
        else:
            self._pending_keys = k.detach()
        return loss

    @torch.no_grad()
    def on_step_end(self) -> None:
        """`step` mode: enqueue the last step's keys (from the global batch) and move the key encoder."""
        if self._pending_keys is not None:
            self.enqueue(gather_no_grad(self._pending_keys))
            self._pending_keys = None
        super().on_step_end()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        size = self.queue.shape[0]
        if size % keys.shape[0]:
            raise ValueError(f"MoCo's queue ({size}) must be a multiple of the global batch ({keys.shape[0]}, "
                             f"{world_size()} process(es))")
        ptr = int(self.queue_ptr)
        self.queue[ptr:ptr + keys.shape[0]] = F.normalize(wide(keys), dim=1).to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + keys.shape[0]) % size)
