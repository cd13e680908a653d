"""A pilot: one CPU-sized setting (network, data, victim, attack budget) made a registered scale of its own, so
that its poisons, victims and records are those of any scale and never mix with another's (issue 39).

A pilot is the mini scale with some of its settings changed (`PilotConfig`); its scale is named
`pilot-<name>`, registered with benchmark.scales.register_scale like any added scale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from victims.recipes import ModelSettings, model_settings

from ..scales import SCALE_TABLE, DataSource, get_scale, register_scale, unregister_scale

PREFIX = "pilot-"
BASE = "mini"
# the mini scale's measured CPU minutes, one thread (docs/evidence.md): the clean SimCLR victim (seed 1112,
# 25 epochs: 11.4), CP-C (40 epochs: 8.0), CP-S (released at 24 of 30 epochs: 79, the budget curve's run)
MINI_MINUTES = {"victim": 11.4, "cp-c": 8.0, "cp-s": 79.0}


@dataclass(frozen=True)
class PilotConfig:
    """The settings a pilot changes from the mini scale (mini's values as defaults; docs/evidence.md, "Pilots").

    width: the architectures' channel multiplier; input_px: CIFAR-10 resized to this side (a smaller input
    pays for a wider network); per_class / classes: the training images per class and the first `classes`
    classes; victim_epochs / victim_batch: the contrastive victims' recipe (warm-up scaled with the epochs);
    cp_c_* / cp_s_*: the CP budgets (epochs; encoder and perturbation batches per CP-C epoch; PGD steps per
    turn); the attacker's network and optimiser are the pilot's, as at every scale."""

    name: str
    width: float = 0.125
    input_px: int = 32
    per_class: int = 1000
    classes: int = 10
    victim_epochs: int = 25
    victim_batch: int = 256
    supervised_epochs: int = 40
    cp_c_epochs: int = 40
    cp_c_steps: int = 10
    cp_c_num_steps: int = 1
    cp_s_epochs: int = 30
    cp_s_num_steps: int = 5
    note: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            problems.append(f"name {self.name!r} must be letters, digits, '-', '_' or '.'")
        if not 0 < self.width <= 1:
            problems.append(f"width {self.width} must be in (0, 1]")
        if not 8 <= self.input_px <= 32:
            problems.append(f"input_px {self.input_px} must be in [8, 32] (CIFAR-10 resized)")
        if not 2 <= self.classes <= 10:
            problems.append(f"classes {self.classes} must be in [2, 10]")
        if not 1 <= self.per_class <= 5000:
            problems.append(f"per_class {self.per_class} must be in [1, 5000] (CIFAR-10 has 5,000 per class)")
        for name in ("victim_epochs", "victim_batch", "supervised_epochs", "cp_c_epochs", "cp_c_steps",
                     "cp_c_num_steps", "cp_s_epochs", "cp_s_num_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.per_class * self.classes < self.victim_batch:
            problems.append(f"{self.per_class * self.classes} training images are fewer than one batch of "
                            f"{self.victim_batch}")
        if problems:
            raise ValueError("pilot settings out of range: " + "; ".join(problems))

    @property
    def is_mini(self) -> bool:
        """The mini scale itself: its pilot is a view of the mini scale's own records (nothing re-run)."""
        return not self.changes()

    @property
    def scale_name(self) -> str:
        return BASE if self.is_mini else PREFIX + self.name

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the mini scale's (the pilot's name and note aside)."""
        default = PilotConfig(name="mini")
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("name", "note") and getattr(self, f.name) != getattr(default, f.name)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def estimated_minutes(self) -> dict[str, float]:
        """CPU minutes (one thread) of the clean victim, the CP-C poison and the CP-S poison, estimated from the
        mini scale's measured ones (MINI_MINUTES) scaled by FLOPs (width^2, pixels) and work (images, epochs,
        steps); a planning aid, not a measurement (a wider network often runs more FLOPs per second)."""
        flops = (self.width / 0.125) ** 2 * (self.input_px / 32) ** 2
        images = self.per_class * self.classes / 10_000
        return {"victim": round(MINI_MINUTES["victim"] * flops * images * self.victim_epochs / 25, 1),
                "cp-c": round(MINI_MINUTES["cp-c"] * flops * self.cp_c_epochs / 40 * self.cp_c_steps / 10
                              * (1 + self.cp_c_num_steps) / 2, 1),
                "cp-s": round(MINI_MINUTES["cp-s"] * flops * images * self.cp_s_epochs / 30
                              * (1 + self.cp_s_num_steps) / 6, 1)}


# The pilots of the study, in the order they were planned (docs/evidence.md, "Pilots", says why these): the
# mini setting itself, then one axis at a time.
PILOTS: dict[str, PilotConfig] = {p.name: p for p in (
    PilotConfig("mini", note="the mini scale as it is (its own records: nothing re-run)"),
    PilotConfig("w0.25-px16", width=0.25, input_px=16,
                note="a wider network paid for by a 16 px input (about mini's FLOPs)"),
    PilotConfig("w0.25", width=0.25, note="a wider network at 32 px (about 4x mini's FLOPs)"),
    PilotConfig("w0.5-px16", width=0.5, input_px=16, note="a 4x wider network at 16 px (about 4x mini's FLOPs)"),
    PilotConfig("500pc-50ep", per_class=500, victim_epochs=50, cp_s_epochs=60, cp_c_epochs=80,
                note="half the images, twice the epochs (mini's cost)"),
    PilotConfig("5cls", classes=5, victim_epochs=50, cp_s_epochs=60, cp_c_epochs=80,
                note="five classes, twice the epochs (mini's cost)"),
)}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs into typed PilotConfig fields (ValueError naming the valid keys)."""
    types = {f.name: f.type for f in fields(PilotConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types or key == "name":
            raise ValueError(f"--set {item!r}: expected key=value with key one of "
                             f"{sorted(k for k in types if k != 'name')}")
        kind = {"float": float, "int": int}.get(str(types[key]), str)
        try:
            out[key] = kind(value)
        except ValueError:
            raise ValueError(f"--set {item!r}: {key} takes a {kind.__name__}") from None
    return out


def resolve(name: str, overrides: dict[str, Any] | None = None) -> PilotConfig:
    """A built-in pilot, or a new one named `name` from mini's settings, with `overrides` over it; a built-in
    pilot's settings cannot be changed under its own name (its records would then mean two things)."""
    overrides = overrides or {}
    if name in PILOTS:
        if overrides:
            raise ValueError(f"pilot {name!r} is built in; give other settings a new name "
                             f"(e.g. --name {name}-{'-'.join(overrides)})")
        return PILOTS[name]
    if not overrides:
        raise ValueError(f"unknown pilot {name!r}; built in: {sorted(PILOTS)} (or give --set key=value to "
                         "define a new one)")
    return PilotConfig(name=name, **overrides)


def pilot_scale(config: PilotConfig):
    """The pilot's scale, registered on first use: mini's data, victims and budgets with the pilot's changes
    (the mini scale itself for a pilot without changes)."""
    if config.is_mini:
        return get_scale(BASE)
    if config.scale_name in SCALE_TABLE:
        unregister_scale(config.scale_name)
    mini, models = get_scale(BASE), model_settings(BASE)
    source = DataSource("cifar10", config.input_px, image_size=None if config.input_px == 32 else config.input_px,
                        train_per_class=config.per_class, classes=None if config.classes == 10 else config.classes)
    train = {}
    for algorithm, cfg in models.train.items():
        epochs = config.supervised_epochs if algorithm == "supervised" else config.victim_epochs
        batch = cfg.batch_size if algorithm == "supervised" else config.victim_batch
        warmup = max(1, round(cfg.warmup_epochs * epochs / cfg.epochs)) if cfg.warmup_epochs else 0
        train[algorithm] = replace(cfg, epochs=epochs, batch_size=batch, warmup_epochs=warmup,
                                   checkpoint_every=max(1, min(cfg.checkpoint_every, epochs // 5)))
    scale = replace(mini, name=config.scale_name, width=config.width, data={"cifar10": source}, train=train,
                    dataset_epochs={}, arch_epochs={})
    budgets = {"cp-c": {"epochs": config.cp_c_epochs, "model_step": config.cp_c_steps,
                        "noise_step": config.cp_c_steps, "num_steps": config.cp_c_num_steps},
               "cp-s": {"epochs": config.cp_s_epochs, "num_steps": config.cp_s_num_steps}}
    return register_scale(scale, ModelSettings(width=config.width, algorithm_settings=dict(models.algorithm_settings),
                                               train=train), like=BASE, attack_budgets_over=budgets)
