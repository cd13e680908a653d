"""Poison generators. A new attack is one file with an `Attack` subclass decorated by
`@register_attack(name)` (from attacks.registry), plus its import at the bottom of this file."""
from __future__ import annotations

import os

import torch

from victims.plugins import GROUPS
from victims.registry import UnknownNameError

from .base import Attack, AttackParamError, check_inputs, params
from .poison import Poison, PoisonError
from .registry import ATTACKS, register_attack
from .spec import AttackSpec, canonical_key


def generate_poison(spec: AttackSpec | dict, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, *,
                    device: torch.device | str = "cpu", workdir: str | os.PathLike | None = None,
                    progress: bool = True, inputs: dict[str, Poison] | None = None,
                    report: dict | None = None) -> Poison:
    """Look up `spec.attack` in ATTACKS and make its poison for uint8 `images` with `labels` and ids `index`.

    `inputs` holds the poisons the attack `requires` (by spec key); one not given is generated here first
    (under `workdir`/requires/ when a workdir is given). `report`, when given, receives what the attack
    measured (its loss history, the epoch it resumed from)."""
    spec = spec if isinstance(spec, AttackSpec) else AttackSpec.from_dict(spec)
    if spec.is_clean:
        raise ValueError("attack 'none' means clean data: there is no poison to generate")
    attack = ATTACKS.get(spec.attack)(inputs)
    check_inputs(images, labels, index)
    for needed in attack.requires(spec):
        if needed.key not in attack.inputs:
            sub = None if workdir is None else os.path.join(workdir, "requires", needed.key[:20])
            attack.inputs[needed.key] = generate_poison(needed, images, labels, index, device=device, workdir=sub,
                                                        progress=progress)
    poison = attack.generate(spec, images, labels, index, device=device, workdir=workdir, progress=progress)
    if report is not None:
        report.update(getattr(attack, "report", {}))
    if poison.per != attack.per or canonical_key(poison.spec) != spec.key:
        raise RuntimeError(f"attack {spec.attack!r} returned a poison for per={poison.per!r}, spec {poison.spec}")
    return poison


from . import contrastive_poisoning, random_noise  # noqa: E402,F401  (register "cp-c", "cp-s", "random")
from . import adversarial, unlearnable  # noqa: E402,F401  (register "ap-t", "ap-u", "ue-c", "ue-s")
from . import augmented, cuda, tue  # noqa: E402,F401  (register "aue", "aap", "cuda", "tue": beyond the paper)


def _adopt_attack(name: str, obj: object) -> type[Attack]:
    """A plugin's entry point object: an `Attack` subclass, named by the entry point."""
    if not (isinstance(obj, type) and issubclass(obj, Attack)):
        raise TypeError(f"an attack entry point must name an Attack subclass or a module that registers one "
                        f"with @register_attack, not {obj!r}")
    obj.name = name
    return obj


ATTACKS.plugins_from(GROUPS["attack"], _adopt_attack)  # everything registered above is built-in

__all__ = ["ATTACKS", "Attack", "AttackParamError", "AttackSpec", "Poison", "PoisonError", "UnknownNameError",
           "generate_poison", "params", "register_attack"]
