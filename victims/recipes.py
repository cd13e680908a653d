"""The models every scale trains, in one place: the victims' scales (benchmark/scales.py) import them,
and attackers build their surrogates from them, so an attacker and a victim of the same scale and
algorithm always have the same network, heads and optimiser settings.

Attack-specific budgets (epochs, PGD steps) live in each attack's own file, keyed by scale.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field, replace

import torch

from victims.algorithms import Algorithm, build_algorithm
from victims.architectures import build_architecture
from victims.registry import UnknownNameError
from victims.train import TrainConfig


@dataclass(frozen=True)
class ModelSettings:
    """Width multiplier, per-algorithm head settings and per-algorithm optimiser settings of a scale."""

    width: float
    algorithm_settings: dict[str, dict] = field(default_factory=dict)
    train: dict[str, TrainConfig] = field(default_factory=dict)


_PAPER_TRAIN = {
    "simclr": TrainConfig(epochs=1000, batch_size=512, lr=0.5, weight_decay=1e-4, warmup_epochs=10),
    "moco": TrainConfig(epochs=1000, batch_size=512, lr=0.3, weight_decay=1e-4, warmup_epochs=10),
    "byol": TrainConfig(epochs=1000, batch_size=512, lr=1.0, weight_decay=1e-4, warmup_epochs=10),
    "supervised": TrainConfig(epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4, warmup_epochs=0),
}

# Beyond the paper (issue 36): solo-learn's CIFAR-10 recipes (scripts/pretrain/cifar/{simsiam,barlow}.yaml):
# batch 256, 10 warm-up epochs from 3e-5, a per-step cosine to 0 (solo/utils/lr_scheduler.py), 1000 epochs;
# SimSiam SGD lr 0.5 wd 1e-5 (its predictor at a constant lr); Barlow Twins LARS lr 0.3 wd 1e-4 eta 0.02,
# the ratio clipped, biases and norms excluded. docs/fidelity.md has the rows.
_SOLO = dict(batch_size=256, warmup_epochs=10, warmup_start_lr=3e-5, final_lr_ratio=0.0, lr_schedule="step")
_BEYOND_TRAIN = {
    "simsiam": TrainConfig(epochs=1000, lr=0.5, weight_decay=1e-5, **_SOLO),
    "barlow_twins": TrainConfig(epochs=1000, lr=0.3, weight_decay=1e-4, optimizer="lars", lars_eta=0.02,
                                lars_clip=True, lars_exclude_1d=True, **_SOLO),
}
_PAPER_TRAIN.update(_BEYOND_TRAIN)

# Mini: CPU-sized (a ResNet-18 at width 0.125, batch 256, tens of epochs); see benchmark/scales.py.
_MINI_TRAIN = {
    "simclr": TrainConfig(epochs=25, batch_size=256, lr=0.5, weight_decay=1e-4, warmup_epochs=3, checkpoint_every=5,
                          embedding_stats=512),
    "moco": TrainConfig(epochs=25, batch_size=256, lr=0.3, weight_decay=1e-4, warmup_epochs=3, checkpoint_every=5,
                        embedding_stats=512),
    "byol": TrainConfig(epochs=25, batch_size=256, lr=1.0, weight_decay=1e-4, warmup_epochs=3, checkpoint_every=5,
                        embedding_stats=512),
    "supervised": TrainConfig(epochs=40, batch_size=128, lr=0.1, weight_decay=5e-4, warmup_epochs=0,
                              checkpoint_every=5),
    **{name: replace(cfg, epochs=25, warmup_epochs=3, checkpoint_every=5, embedding_stats=512)
       for name, cfg in _BEYOND_TRAIN.items()},
}

# What the official code does beyond the textbook algorithms, at every scale (docs/fidelity.md): the SimCLR
# and MoCo losses times temperature / 0.07, SimCLR's gradient a quarter of the full batch's (its 4-process
# gather), heads without batch norm for SimCLR and MoCo, the momentum copies moved at every forward.
OFFICIAL = {"simclr": {"base_temperature": 0.07, "gradient_share": 0.25, "head_batch_norm": False},
            "moco": {"base_temperature": 0.07, "head_batch_norm": False, "state_updates": "forward"},
            "byol": {"state_updates": "forward", "target_gradient": False}}


def _with_official(settings: dict[str, dict]) -> dict[str, dict]:
    return {name: {**OFFICIAL.get(name, {}), **values} for name, values in settings.items()}


MODELS: dict[str, ModelSettings] = {
    "paper": ModelSettings(
        width=1.0, train=_PAPER_TRAIN,
        algorithm_settings=_with_official({
            "simclr": {"temperature": 0.5, "out_dim": 128},
            "moco": {"temperature": 0.2, "queue_size": 4096, "momentum": 0.99, "out_dim": 128},
            "byol": {"momentum": 0.999, "hidden_dim": 4096, "out_dim": 256},
            "simsiam": {"hidden_dim": 2048, "out_dim": 2048, "pred_dim": 512},
            "barlow_twins": {"hidden_dim": 2048, "out_dim": 2048, "lamb": 0.0051, "scale_loss": 0.1}})),
    "mini": ModelSettings(
        width=0.125, train=_MINI_TRAIN,
        algorithm_settings=_with_official({
            "simclr": {"temperature": 0.5, "out_dim": 128},
            "moco": {"temperature": 0.2, "queue_size": 1024, "momentum": 0.99, "out_dim": 128},
            "byol": {"momentum": 0.99, "hidden_dim": 512, "out_dim": 128},
            "simsiam": {"hidden_dim": 256, "out_dim": 256, "pred_dim": 64},
            "barlow_twins": {"hidden_dim": 256, "out_dim": 256, "lamb": 0.0051, "scale_loss": 0.1}})),
    "smoke": ModelSettings(
        width=0.125,
        train={name: replace(cfg, epochs=2, batch_size=64, warmup_epochs=1, checkpoint_every=1)
               for name, cfg in _MINI_TRAIN.items()},
        algorithm_settings=_with_official({
            "simclr": {"temperature": 0.5, "out_dim": 32},
            "moco": {"temperature": 0.2, "queue_size": 256, "momentum": 0.99, "out_dim": 32},
            "byol": {"momentum": 0.99, "hidden_dim": 64, "out_dim": 32},
            "simsiam": {"hidden_dim": 64, "out_dim": 64, "pred_dim": 16},
            "barlow_twins": {"hidden_dim": 64, "out_dim": 64, "lamb": 0.0051, "scale_loss": 0.1}})),
}


def add_recipe(algorithm: str, train: dict[str, TrainConfig], settings: dict[str, dict] | None = None) -> None:
    """Register the recipe of a new algorithm: its TrainConfig (and constructor settings) at each scale;
    a scale left out cannot train it."""
    unknown = sorted(set(train) - set(MODELS))
    if unknown:
        raise UnknownNameError("scale", unknown[0], list(MODELS))
    for scale, config in train.items():
        MODELS[scale].train[algorithm] = config
        MODELS[scale].algorithm_settings[algorithm] = dict((settings or {}).get(scale, {}))


def model_settings(scale: str) -> ModelSettings:
    if scale not in MODELS:
        raise UnknownNameError("scale", scale, list(MODELS))
    return MODELS[scale]


def input_size_for(image_side: int) -> int:
    """The crop side trained on: the image side up to 96 px (CIFAR, STL-10, the mini stand-ins), 224 for
    larger (ImageNet-style) images."""
    return image_side if image_side <= 96 else 224


def stem_for(input_size: int) -> str:
    return "cifar" if input_size <= 64 else "imagenet"


def build_encoder(arch: str, scale: str, input_size: int) -> torch.nn.Module:
    """The scale's `arch` for crops of `input_size` px (its stem and width), weights drawn from the global RNG:
    the encoder of build_model, and alone the untrained control's."""
    return build_architecture(arch, stem=stem_for(input_size), width=model_settings(scale).width)


def build_model(algorithm: str, arch: str, scale: str, num_classes: int, image_side: int | None = None,
                seed: int | None = None, *, input_size: int | None = None) -> tuple[Algorithm, TrainConfig, int]:
    """The scale's network for `algorithm` on `arch`: (algorithm module, its TrainConfig, input size).

    The input size is `input_size` where given (a scale may train below the images' side: mini STL-10 at
    32 px), else input_size_for(image_side). With `seed`, the weights are drawn from that seed (without
    disturbing the global RNG); without, from the global RNG, as a module's constructor draws them (a caller
    that seeds it first gets the weights that seed gives, and the RNG moves on as it did)."""
    settings = model_settings(scale)
    if algorithm not in settings.train:
        raise UnknownNameError("algorithm", algorithm, list(settings.train))
    if input_size is None:
        if image_side is None:
            raise TypeError("build_model needs the image side or the input size")
        input_size = input_size_for(image_side)
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        encoder = build_encoder(arch, scale, input_size)
        model = build_algorithm(algorithm, encoder, num_classes, **settings.algorithm_settings.get(algorithm, {}))
    config = settings.train[algorithm]
    if seed is not None:
        config = TrainConfig(**{**asdict(config), "seed": seed})
    return model, config, input_size
