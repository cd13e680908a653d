"""The one training loop for every algorithm: uint8 data on the device, kornia views, SGD with warm-up
and cosine decay, mixed precision on CUDA, checkpoints that resume exactly, DDP when launched so."""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from .algorithms import Algorithm
from .atomic import atomic_path
from .augment import to_float
from .distributed import all_reduce_mean, convert_batchnorm, is_distributed, rank, world_size
from .lars import LARS
from .losses import alignment, uniformity
from .poisoning import Perturbation, apply_delta

# A training-time defense's hook (defenses/): (algorithm, views, labels) -> the views to train on, same shapes.
ViewHook = Callable[[nn.Module, list[torch.Tensor], torch.Tensor], list[torch.Tensor]]


@dataclass
class TrainConfig:
    """Optimisation settings of one training run (batch_size is the global batch)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    warmup_start_lr: float = 0.01
    final_lr_ratio: float = 1e-3
    checkpoint_every: int = 10
    amp: bool = True  # bfloat16 autocast, on CUDA only
    channels_last: bool = True
    seed: int = 1112
    view_chunks: int = 0  # augmentation RNG chunks per batch; 0 = one per process (same views under DDP)
    embedding_stats: int = 0  # images used to log alignment/uniformity after each epoch (0 = off)
    lr_schedule: str = "epoch"  # "epoch": the official one (see learning_rate); "step": per-step cosine
    grad_clip: float = 0.0  # clip the gradient's global norm to this before each step (0 = off)
    optimizer: str = "sgd"  # "sgd" (torch's, with momentum) or "lars" (victims/lars.py, solo-learn's)
    lars_eta: float = 1e-3  # LARS's trust coefficient
    lars_clip: bool = False  # LARS: the trust ratio / lr clipped at 1
    lars_exclude_1d: bool = False  # LARS: biases and norm weights get neither the ratio nor weight decay


LR_SCHEDULES = ("epoch", "step")
OPTIMIZERS = ("sgd", "lars")


# TrainConfig fields that do not change the trained weights (how often to save, what to log)
MEASUREMENT_ONLY = ("checkpoint_every", "embedding_stats")
# Settings added after records were first written, with the value every earlier run had in effect: a record
# without them was trained with these (a per-step cosine, no clipping).
BEFORE_THEY_EXISTED = {"lr_schedule": "step", "grad_clip": 0.0, "optimizer": "sgd", "lars_eta": 1e-3,
                       "lars_clip": False, "lars_exclude_1d": False}


def outcome_settings(config: TrainConfig | dict) -> dict:
    """The settings that determine the trained weights: two runs that agree on these train the same model."""
    settings = asdict(config) if isinstance(config, TrainConfig) else {**BEFORE_THEY_EXISTED, **config}
    return {k: v for k, v in settings.items() if k not in MEASUREMENT_ONLY}


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    resumed_from_epoch: int = 0


def learning_rate(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """The learning rate of optimiser step `step` (0-based), cosine from lr to lr * final_lr_ratio.

    "epoch" (the official code): the cosine is set at the start of each epoch e = 1..epochs at e / epochs;
    during the first `warmup_epochs` the rate instead rises linearly, step by step, from warmup_start_lr
    to the cosine's value at the end of the warm-up. "step": linear warm-up to lr, then a per-step cosine
    over the remaining steps.
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {config.lr_schedule!r}")
    final = config.lr * config.final_lr_ratio
    start = min(config.warmup_start_lr, config.lr)
    warmup_steps = config.warmup_epochs * steps_per_epoch

    def cosine(progress: float) -> float:
        return final + (config.lr - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    if config.lr_schedule == "epoch":
        epochs = max(config.epochs, 1)
        if step < warmup_steps:
            return start + (cosine(config.warmup_epochs / epochs) - start) * step / warmup_steps
        return cosine((step // max(steps_per_epoch, 1) + 1) / epochs)
    if step < warmup_steps:
        return start + (config.lr - start) * step / warmup_steps
    total_steps = config.epochs * steps_per_epoch
    return cosine((step - warmup_steps) / max(1, total_steps - warmup_steps))


def build_optimizer(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of `config.optimizer` over the algorithm's parameter groups (their extra keys, such as
    `static_lr`, are kept in the groups)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "lars":
        return LARS(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                    eta=config.lars_eta, clip=config.lars_clip, exclude_1d=config.lars_exclude_1d)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {config.optimizer!r}")


def mix_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (seed, step, chunk, ...)."""
    value = 0
    for p in parts:
        value = (value * 1_000_003 + int(p)) % (2**63 - 1)
    return value


class Trainer:
    """Owns the model (DDP-wrapped when distributed), its optimiser and the step counter."""

    def __init__(self, algorithm: Algorithm, config: TrainConfig, augment: nn.Module, device: torch.device | str,
                 steps_per_epoch: int = 1, view_hook: ViewHook | None = None):
        self.config, self.device = config, torch.device(device)
        self.view_hook = view_hook  # a training-time defense: the views each step trains on (e.g. adversarial)
        self.algorithm = algorithm.to(self.device)
        if config.channels_last:
            self.algorithm.to(memory_format=torch.channels_last)
        self.augment = augment.to(self.device)
        self.model: nn.Module = self.algorithm
        if is_distributed():
            self.algorithm = convert_batchnorm(self.algorithm, self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.algorithm, device_ids=ids)
        self.optimizer = build_optimizer(self.algorithm.param_groups(), config)
        self.steps_per_epoch = steps_per_epoch
        self.step_count = 0
        chunks = config.view_chunks or world_size()
        if chunks % world_size():
            raise ValueError(f"view_chunks ({chunks}) must be a multiple of the number of processes ({world_size()})")
        self.chunks_per_process = chunks // world_size()

    def views(self, x: torch.Tensor, salt: int) -> list[torch.Tensor]:
        """Augmented views of a local batch (1 for supervised, 2 otherwise); the randomness depends only
        on (seed, salt, chunk), so one process and N processes see the same views of the same images."""
        count = 2 if self.algorithm.contrastive else 1
        parts = torch.chunk(x, self.chunks_per_process)
        out: list[list[torch.Tensor]] = [[] for _ in range(count)]
        devices = [self.device] if self.device.type == "cuda" else []
        for c, part in enumerate(parts):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(mix_seed(self.config.seed, salt, rank() * self.chunks_per_process + c))
                # both views in one call (independent parameters per image): half the per-call overhead
                for v, view in enumerate(self.augment(part.repeat(count, 1, 1, 1)).chunk(count)):
                    out[v].append(view)
        views = [torch.cat(v) for v in out]
        if self.config.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, salt: int | None = None) -> float:
        """One optimiser step on a local batch (uint8, or float in [0, 1]); returns the global mean loss."""
        x = to_float(images.to(self.device, non_blocking=True))
        views = self.views(x, self.step_count if salt is None else salt)
        if self.view_hook is not None:
            views = self.view_hook(self.algorithm, views, labels.to(self.device))
        return self.step_on_views(views, labels)

    def step_on_views(self, views: list[torch.Tensor], labels: torch.Tensor) -> float:
        """One optimiser step on views already made (by `views`); returns the global mean loss."""
        self.model.train()
        lr = learning_rate(self.step_count, self.steps_per_epoch, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr if group.get("static_lr") else lr
        labels = labels.to(self.device, non_blocking=True)
        amp = self.config.amp and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = self.model(*views, labels=labels) if len(views) == 2 else self.model(views[0], labels=labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.algorithm.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.algorithm.on_step_end()
        self.step_count += 1
        return float(all_reduce_mean(loss.detach()))

    def state_dict(self) -> dict:
        return {"algorithm": self.algorithm.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.algorithm.load_state_dict(state["algorithm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step_count"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: write a temporary file beside the target, then rename it over the target."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.no_grad()
def embedding_stats(algorithm: Algorithm, trainer: Trainer, images: torch.Tensor) -> dict[str, float]:
    """Alignment and uniformity of the algorithm's embeddings of two views of fixed images (eval mode)."""
    was_training = algorithm.training
    algorithm.eval()
    views = trainer.views(to_float(images.to(trainer.device)), salt=-1)
    v1, v2 = (views * 2)[:2]  # a supervised algorithm has one view: its alignment is 0 by definition
    z1, z2 = algorithm.embed(v1), algorithm.embed(v2)
    algorithm.train(was_training)
    return {"alignment": float(alignment(z1, z2)), "uniformity": float(uniformity(torch.cat([z1, z2])))}


def fit(algorithm: Algorithm, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, augment: nn.Module,
        *, device: torch.device | str = "cpu", perturbation: Perturbation | None = None,
        checkpoint: Path | None = None, progress: bool = True,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        view_hook: ViewHook | None = None) -> TrainResult:
    """Train `algorithm` on uint8 `images` (N, 3, H, W), applying `perturbation` batch by batch.

    Each epoch visits a permutation drawn from (seed, epoch), in global batches (the last partial batch
    is dropped); under DDP each process takes its slice of every global batch. A checkpoint is written
    every `checkpoint_every` epochs and at the end; an existing checkpoint is resumed from.
    """
    n, world = len(labels), world_size()
    if config.batch_size % world:
        raise ValueError(f"the global batch ({config.batch_size}) must divide among {world} processes")
    steps = n // config.batch_size
    if steps == 0:
        raise ValueError(f"{n} training images are fewer than one batch of {config.batch_size}")
    trainer = Trainer(algorithm, config, augment, device, steps_per_epoch=steps, view_hook=view_hook)
    device = trainer.device
    on_device = device.type == "cpu" or images.numel() < 8 * 2**30
    data = images.to(device) if on_device else images
    targets = labels.to(device)
    result, start = TrainResult(), 0
    state = load_checkpoint(checkpoint) if checkpoint else None
    if state is not None and (outcome_settings(state.get("config", asdict(config))) != outcome_settings(config)
                              or state.get("images", n) != n):
        warnings.warn(f"{checkpoint} was made with other training settings or data: training from the start")
        state = None
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        torch.set_rng_state(state["rng"])
        result.history, start = list(state["history"]), int(state["epoch"])
        result.resumed_from_epoch, result.wall_s = start, float(state["wall_s"])
    stats_images = images[torch.linspace(0, n - 1, min(n, config.embedding_stats)).long()] \
        if config.embedding_stats else None
    local = config.batch_size // world
    bar = tqdm(range(start, config.epochs), initial=start, total=config.epochs, desc=f"train {algorithm.name}",
               unit="epoch", disable=not progress or rank() != 0, dynamic_ncols=True)
    for epoch in bar:
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(config.seed, epoch)))
        losses = []
        for step in range(steps):
            batch = order[step * config.batch_size:(step + 1) * config.batch_size]
            batch = batch[rank() * local:(rank() + 1) * local]
            x = data[batch.to(data.device)]
            y = targets[batch.to(device)]
            if perturbation is not None:
                x = apply_delta(x, perturbation.rows(batch, labels[batch]))
            losses.append(trainer.train_step(x, y))
        seconds = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "loss": sum(losses) / len(losses), "lr": trainer.optimizer.param_groups[0]["lr"],
                 "images_per_s": steps * config.batch_size / seconds, "seconds": seconds}
        if stats_images is not None:
            entry.update(embedding_stats(trainer.algorithm, trainer, stats_images))
        result.history.append(entry)
        result.wall_s += seconds
        bar.set_postfix(loss=f"{entry['loss']:.4f}", img_s=f"{entry['images_per_s']:.0f}")
        if on_epoch_end:
            on_epoch_end(epoch + 1, entry)
        last = epoch + 1 == config.epochs
        if checkpoint and rank() == 0 and (last or (epoch + 1) % config.checkpoint_every == 0):
            save_checkpoint(checkpoint, {"epoch": epoch + 1, "trainer": trainer.state_dict(),
                                         "rng": torch.get_rng_state(), "history": result.history,
                                         "wall_s": result.wall_s, "config": asdict(config), "images": n})
    bar.close()
    return result
