"""The three scales in one place: which data stands for each data set, and every hyper-parameter.

Only settings change between scales, never the cells. `paper` holds the official values
(shared/REFERENCE.md); `mini` runs on real data on a 2-core CPU; `smoke` on generated data in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from attacks import budgets as attack_budgets
from victims.algorithms import ALGORITHMS
from victims.recipes import MODELS, ModelSettings, stem_for
from victims.train import TrainConfig
from victims.probe import ProbeConfig
from victims.registry import UnknownNameError

from .specs import SCALES


@dataclass(frozen=True)
class DataSource:
    """The data loaded for a data set at a scale, and the victim's input size on it."""

    dataset: str  # the source actually loaded (a stand-in where it differs from the cell's data set)
    input_size: int  # the side of the crops the victim trains and is probed on
    image_size: int | None = None  # cached side length (None: the source's default)
    train_per_class: int | None = None  # class-balanced training subset (None: all)
    test_per_class: int | None = None
    synthetic_classes: int = 10
    classes: int | None = None  # only the first `classes` classes of the source (None: all)

    @property
    def stem(self) -> str:
        return stem_for(self.input_size)


@dataclass(frozen=True)
class Scale:
    name: str
    width: float  # the architectures' channel multiplier
    data: dict[str, DataSource]
    train: dict[str, TrainConfig]  # per victim algorithm
    algorithm_settings: dict[str, dict] = field(default_factory=dict)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    knn_k: int = 200
    # victim epochs where a data set or an architecture differs from the scale's default (warm-up scaled
    # with them); an architecture's entry wins over its data set's
    dataset_epochs: dict[str, int] = field(default_factory=dict)
    arch_epochs: dict[str, int] = field(default_factory=dict)

    def train_config(self, algorithm: str, dataset: str, arch: str) -> TrainConfig:
        """The victim's training settings for this algorithm, data set and architecture."""
        ALGORITHMS.get(algorithm)  # an unknown name fails here; a plugin's recipe is added as it loads
        if algorithm not in self.train:
            error = UnknownNameError(f"{self.name}-scale recipe", algorithm, list(self.train))
            error.args = (f"{error.args[0]} (an algorithm's recipe is added with victims.recipes.add_recipe)",)
            raise error
        config = self.train[algorithm]
        epochs = self.arch_epochs.get(arch, self.dataset_epochs.get(dataset, config.epochs))
        if epochs == config.epochs:
            return config
        warmup = max(1, round(config.warmup_epochs * epochs / config.epochs)) if config.warmup_epochs else 0
        return replace(config, epochs=epochs, warmup_epochs=warmup,
                       checkpoint_every=max(1, min(config.checkpoint_every, epochs // 5)))

    def source(self, dataset: str) -> DataSource:
        if dataset not in self.data:
            raise UnknownNameError(f"data set at the {self.name} scale", dataset, list(self.data))
        return self.data[dataset]

    def describe_data(self, dataset: str) -> str:
        """E.g. 'ImageNet-100 -> imagenette (64 px, 100/class)' for captions and records."""
        s = self.source(dataset)
        parts = [f"{s.input_size} px"] + ([f"{s.train_per_class}/class"] if s.train_per_class else []) + \
            ([f"first {s.classes} classes"] if s.classes else [])
        return f"{dataset} -> {s.dataset} ({', '.join(parts)})" if s.dataset != dataset else \
            f"{dataset} ({', '.join(parts)})"


PAPER = Scale(
    name="paper", width=MODELS["paper"].width,
    data={"cifar10": DataSource("cifar10", 32), "cifar100": DataSource("cifar100", 32),
          "stl10": DataSource("stl10", 96), "imagenet100": DataSource("imagenet100", 224, image_size=256)},
    train=MODELS["paper"].train, algorithm_settings=MODELS["paper"].algorithm_settings,
    probe=ProbeConfig(),
)

# Mini: CPU-sized on real CIFAR-10 (10,000 training images, 1,000 per class), a ResNet-18 at width 0.125.
# Batch 256 (half the paper's), the paper's learning rates; MoCo's queue keeps about the paper's share of the
# training set (4096 / 50,000 -> 1024 / 10,000). The networks and optimiser settings are victims/recipes.py's
# (shared with the attackers). To fit the `all` grid in about 8 hours of a 2-core machine: CIFAR-100 at 50
# images per class; the slower architectures trained for about the compute of ResNet-18's 25 epochs; the
# 1,000-image Imagenette stand-in for ImageNet-100 gets 60 epochs at 64 px (docs/data.md).
MINI = Scale(
    name="mini", width=MODELS["mini"].width,
    data={"cifar10": DataSource("cifar10", 32, train_per_class=1000),
          "cifar100": DataSource("cifar100", 32, train_per_class=50),
          "stl10": DataSource("imagenette", 32, image_size=96),
          "imagenet100": DataSource("imagenette", 64, image_size=64)},
    train=MODELS["mini"].train, algorithm_settings=MODELS["mini"].algorithm_settings,
    probe=ProbeConfig(epochs=100, augment=False, standardize=True),
    dataset_epochs={"imagenet100": 60},
    arch_epochs={"resnet50": 9, "densenet121": 5, "mobilenetv2": 7},
)

SMOKE = Scale(
    name="smoke", width=MODELS["smoke"].width,
    data={name: DataSource("synthetic", 32, train_per_class=32, test_per_class=16)
          for name in ("cifar10", "cifar100", "stl10", "imagenet100")},
    train=MODELS["smoke"].train, algorithm_settings=MODELS["smoke"].algorithm_settings,
    probe=ProbeConfig(epochs=10, batch_size=128, milestones=(6, 8), augment=False, standardize=True),
    knn_k=20,
)

SCALE_TABLE = {s.name: s for s in (SMOKE, MINI, PAPER)}
assert tuple(sorted(SCALE_TABLE)) == tuple(sorted(SCALES))


def register_scale(scale: Scale, models: ModelSettings, *, like: str,
                   attack_budgets_over: Mapping[str, Mapping[str, Any]] | None = None) -> Scale:
    """Add a scale: its data and victims' settings (`scale`), the networks both victims and attackers build
    (`models`, victims/recipes.py), and every built-in attack's budget copied from scale `like` with
    `attack_budgets_over` (attack -> parameters) over it. A name taken raises ValueError; a bad budget
    override raises AttackParamError before anything is registered. Records name the scale, so a registered
    scale's records never mix with another's."""
    if scale.name in SCALE_TABLE or scale.name in MODELS:
        raise ValueError(f"scale {scale.name!r} exists already; scales: {sorted(SCALE_TABLE)}")
    get_scale(like)
    attack_budgets.add_scale(scale.name, like, attack_budgets_over)
    MODELS[scale.name] = models
    SCALE_TABLE[scale.name] = scale
    SCALES.append(scale.name)
    return scale


def unregister_scale(name: str) -> None:
    """Withdraw a registered scale (the built-in three stay)."""
    if name in ("smoke", "mini", "paper"):
        raise ValueError(f"the built-in scale {name!r} cannot be withdrawn")
    attack_budgets.remove_scale(name)
    MODELS.pop(name, None)
    SCALE_TABLE.pop(name, None)
    if name in SCALES:
        SCALES.remove(name)


def get_scale(name: str) -> Scale:
    if name not in SCALE_TABLE:
        raise UnknownNameError("scale", name, list(SCALE_TABLE))
    return SCALE_TABLE[name]
