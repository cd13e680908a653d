"""The authors' code loaded in this process and adapted from outside its files (used by `refside`, which
runs it in a subprocess; see its docstring for each adaptation). Nothing of theirs is copied or edited.
"""
from __future__ import annotations

import functools
import math
import sys
import types
from argparse import Namespace
from pathlib import Path

import torch

# ours, imported before the reference's kornia replaces the installed one
from victims.architectures.resnet import resnet18 as our_resnet18
from victims.atomic import atomic_path

REF: dict[str, types.ModuleType] = {}
ROOT: Path | None = None  # the checkout loaded (worker processes load it again)


def load_reference(root: Path) -> dict[str, types.ModuleType]:
    """Import their modules (model, cl_algs, losses, util, main, resnet, datasets) with kornia-pil."""
    import torchvision.transforms as T

    global ROOT
    ROOT = root

    for name in [m for m in sys.modules if m == "kornia" or m.startswith("kornia.")]:
        del sys.modules[name]
    sys.path[:0] = [str(root), str(root / "kornia-pil")]
    if not hasattr(T, "RandomSizedCrop"):
        T.RandomSizedCrop = T.RandomResizedCrop  # the deprecated alias (same class) kornia-pil calls
    board = types.ModuleType("torch.utils.tensorboard")

    class SummaryWriter:  # noqa: D401 - a stand-in: their CP loop never logs through it here
        def __init__(self, *a, **k): pass
        def add_scalar(self, *a, **k): pass

    board.SummaryWriter = SummaryWriter
    sys.modules["torch.utils.tensorboard"] = board
    torch.Tensor.cuda = lambda self, *a, **k: self  # their MoCo shuffle: randperm(...).cuda()
    import kornia
    if not kornia.__file__.startswith(str(root)):
        raise RuntimeError(f"kornia came from {kornia.__file__}, not the reference's kornia-pil")
    for name in ("resnet", "losses", "cl_algs", "model", "util", "datasets", "main"):
        REF[name] = __import__(name)
    torch1_clamp()  # after the imports: kornia-pil scripts some functions with torch.jit as it loads
    return REF


def torch1_clamp() -> None:
    """`torch.clamp` and `Tensor.clamp` with the gradient the authors' torch 1.x gave: 1 at the bounds
    (pytorch/pytorch#7049, 2018: "subgradient 1 at min and max"), where torch since 2026 gives 0
    (pytorch/pytorch#184572). Their `clamp(delta, -1, 1)` sits on every entry a PGD step pushed to the bound:
    under the new rule such an entry gets no gradient and never moves again, which their runs never saw."""
    plain_clamp, plain_method = torch.clamp, torch.Tensor.clamp

    def clamp(input, min=None, max=None, *, out=None):
        if out is not None or not (torch.is_grad_enabled() and input.requires_grad) \
                or isinstance(min, torch.Tensor) or isinstance(max, torch.Tensor):
            return plain_clamp(input, min, max) if out is None else plain_clamp(input, min, max, out=out)
        inside = torch.ones_like(input, dtype=torch.bool)
        if min is not None:
            inside = inside & (input >= min)
        if max is not None:
            inside = inside & (input <= max)
        return torch.where(inside, input, plain_clamp(input.detach(), min, max))

    torch.clamp = clamp
    torch.Tensor.clamp = lambda self, min=None, max=None: clamp(self, min, max) \
        if torch.is_grad_enabled() and self.requires_grad else plain_method(self, min, max)


def init_group(workdir: Path) -> None:
    import torch.distributed as dist
    if not dist.is_initialized():
        store = workdir / "pg_store"
        store.unlink(missing_ok=True)
        dist.init_process_group("gloo", init_method=f"file://{store}", world_size=1, rank=0)


def hand_network(arch: str, width: float) -> None:
    """Their builder makes our network at `width` (1.0 = their own ResNet-18, untouched)."""
    if width != 1.0:
        REF["resnet"].model_dict[arch] = [functools.partial(our_resnet18, stem="cifar", width=width),
                                          our_resnet18(stem="cifar", width=width).feature_dim]


def byol_heads(hidden_dim: int, out_dim: int, momentum: float) -> None:
    REF["model"].BYOL = functools.partial(REF["cl_algs"].BYOL, hidden_dim=hidden_dim, out_dim=out_dim, m=momentum)


def options(task: dict) -> Namespace:
    """Their `opt` as parse_option leaves it, for one CP or victim run (task['opt'] over the defaults)."""
    alg = task["cl_alg"]
    opt = Namespace(
        print_freq=10 ** 9, batch_size=512, epochs=1000, seed=1112, learning_rate=0.5, lr_decay_rate=0.1,
        weight_decay=1e-4, momentum=0.9, cosine=True, syncBN=False, warm=False, arch="resnet18", dataset="cifar10",
        dataset_size=50000, size=32, cl_alg=alg, temp=0.5, moco_dim=128, moco_k=4096, moco_m=0.99, baseline=False,
        pretrained_delta="", samplewise=False, classwise=False, initialized_delta="", delta_weight=8 / 255,
        delta_learning_rate=1e-3, delta_weight_decay=0.0, num_steps=5, step_size=0.1, model_step=1000,
        noise_step=1000, allow_mmt_grad=False, local_rank=0, nprocs=1, n_cls=10)
    if alg == "MoCov2":  # parse_option's per-algorithm settings
        opt.temp, opt.learning_rate = 0.2, 0.3
    elif alg == "BYOL":
        opt.learning_rate = 1.0
    for k, v in task.get("opt", {}).items():
        setattr(opt, k, v)
    if opt.cl_alg == "BYOL" and opt.samplewise and not opt.baseline:
        opt.num_steps, opt.step_size = 1, 0.02
    if opt.warm:  # parse_option's warm-up target (cosine)
        eta_min = opt.learning_rate * (opt.lr_decay_rate ** 3)
        opt.warmup_to = eta_min + (opt.learning_rate - eta_min) * (
            1 + math.cos(math.pi * opt.warm_epochs / opt.epochs)) / 2
    return opt


def build(opt: Namespace, task: dict):
    """Their set_model without `.cuda()` and SyncBN (world size 1: plain batch norm is the same)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    hand_network(opt.arch, task.get("width", 1.0))
    if opt.cl_alg == "BYOL":
        byol_heads(**task.get("byol", {"hidden_dim": 4096, "out_dim": 256, "momentum": 0.999}))
    model = REF["model"].AttackModel(arch=opt.arch, dataset=opt.dataset, opt=opt)
    if opt.baseline or opt.pretrained_delta:
        model.delta.requires_grad = False
    losses = REF["losses"]
    criterion = {"SimCLR": lambda: losses.SimCLRLoss(temperature=opt.temp),
                 "MoCov2": lambda: losses.MoCoLoss(temperature=opt.temp),
                 "BYOL": losses.SymNegCosineSimilarityLoss}[opt.cl_alg]()
    if opt.cl_alg == "MoCov2":
        for p in model.backbone.encoder_k.parameters():
            p.requires_grad = False
    if opt.cl_alg == "BYOL":
        for m in (model.backbone.momentum_backbone, model.backbone.momentum_projection_head):
            for p in m.parameters():
                p.requires_grad = False
    share = float(task.get("gradient_share", 1.0))
    if share != 1.0:  # their 4-process launch: each parameter gets `share` of the one-process gradient
        for p in model.backbone.parameters():
            if p.requires_grad:
                p.register_hook(lambda g, share=share: g * share)
    return DDP(model, find_unused_parameters=True), criterion


class Rows(torch.utils.data.Dataset):
    """Their I_CIFAR10 (image, target, index) over arrays handed to it, its own __getitem__ running."""

    def __new__(cls, data, targets, transform):
        ds = object.__new__(REF["datasets"].I_CIFAR10)
        ds.data, ds.targets, ds.transform, ds.target_transform = data, list(targets), transform, None
        return ds


def save(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ---------------------------------------------------------------------------------------------------------
# end to end: their CP loop
