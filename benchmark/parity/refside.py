"""The authors' code, run in this process on a CPU: `python -m benchmark.parity.refside TASK WORKDIR REF`.

Adapted from outside its files only (nothing of theirs is copied or edited):
- our modules are imported first (with the installed kornia), then every `kornia` module is dropped from
  `sys.modules` and the checkout and its kornia-pil go first on `sys.path`, so their `import kornia` is the
  patched kornia 0.5.11 they ran;
- shims for what a current stack lacks: `torchvision.transforms.RandomSizedCrop` (an alias of
  RandomResizedCrop that kornia-pil's crop sampler calls, removed from torchvision since), a stand-in
  `torch.utils.tensorboard` (their main.py imports its SummaryWriter; nothing is logged), and `.cuda()` a
  no-op (their MoCo batch shuffle moves its permutation to the GPU);
- a gloo process group of world size 1 stands for their 4-process NCCL launch, and their DDP wrapper is
  kept (their loop reaches the model through `.module`);
- their ResNet builder is handed our network (`model_dict[arch]`) where a scale narrower than theirs is
  compared, and their BYOL constructor gets the scale's head sizes and momentum.
The task reads `WORKDIR/task.json` (+ tensors in `WORKDIR/inputs.pt`) and writes `WORKDIR/outputs.pt`.
"""
from __future__ import annotations

import functools
import json
import math
import sys
import time
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


def run_cp(workdir: Path, task: dict) -> None:
    """Their CP main loop (main_worker's epochs over train_contrastive_poisoning), checkpointed every epoch;
    `release_epoch`'s delta is saved as `delta.pt`. `warmup_steps` > 0 adds a linear warm-up of the encoder's
    learning rate from 0.01 over that many steps (our mini MoCo v2 attacker's; theirs has none)."""
    from torchvision import transforms

    main, util = REF["main"], REF["util"]
    opt = options(task)
    util.set_seed(opt.seed)
    inputs = torch.load(workdir / "inputs.pt", weights_only=True)
    data = inputs["images"].permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, 3) as CIFAR's .data
    opt.dataset_size = len(data)
    model, criterion = build(opt, task)
    optim = main.set_optimizer(opt, model)
    optimizer, delta_optimizer = optim["optimizer"], optim["delta_optimizer"]
    dataset = Rows(data, inputs["labels"].tolist(), transforms.Compose([transforms.ToTensor()]))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=opt.batch_size // opt.nprocs, num_workers=0,
                                         sampler=sampler, drop_last=True)
    ckpt, start, history = workdir / "checkpoint.pt", 1, []
    warm = int(task.get("warmup_steps", 0))
    state = torch.load(ckpt, weights_only=False) if ckpt.is_file() else None
    if state is not None:  # resumes at an epoch boundary (the encoder's iterator starts a fresh pass)
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        delta_optimizer.load_state_dict(state["delta_optimizer"])
        torch.set_rng_state(state["rng"])
        start, history = state["epoch"] + 1, state["history"]
    steps = {"n": (start - 1) * min(opt.model_step, len(loader))}
    if warm:
        real_step = optimizer.step

        def step(*a, **k):
            if steps["n"] < warm:
                target = opt.learning_rate * 1e-3 + (opt.learning_rate - opt.learning_rate * 1e-3) * (
                    1 + math.cos(math.pi * math.ceil(warm / min(opt.model_step, len(loader))) / opt.epochs)) / 2
                for g in optimizer.param_groups:
                    g["lr"] = 0.01 + (target - 0.01) * steps["n"] / warm
            steps["n"] += 1
            return real_step(*a, **k)
        optimizer.step = step
    iterator = iter(loader)
    end = int(task.get("release_epoch", opt.epochs))
    for epoch in range(start, end + 1):
        t0 = time.perf_counter()
        util.adjust_learning_rate(opt, optimizer, epoch)
        sampler.set_epoch(epoch)
        loss, delta_loss, iterator = main.train_contrastive_poisoning(
            loader, iterator, model, criterion, optimizer, delta_optimizer, epoch, opt)
        history.append({"epoch": epoch, "model_loss": float(loss), "noise_loss": float(delta_loss),
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        save(ckpt, {"epoch": epoch, "model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                    "delta_optimizer": delta_optimizer.state_dict(), "rng": torch.get_rng_state(),
                    "history": history})
    released = release(inputs["images"], inputs["labels"], model.module.delta.detach(), opt)
    save(workdir / "outputs.pt", {"released": released, "delta": model.module.delta.detach().clone(),
                                  "history": history})


def release(images: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor, opt: Namespace) -> torch.Tensor:
    """The poisoned uint8 images their victim loads: ToTensor, their DatasetPoisoning (x + eps * delta,
    clamped), ToPILImage's `mul(255).byte()`; batched, with the very float32 operations of the per-image path."""
    mode = "samplewise" if opt.samplewise else "classwise"
    poisoning = REF["datasets"].DatasetPoisoning(delta_weight=opt.delta_weight, delta=delta, mode=mode)
    x = images.float().div(255)
    index = torch.arange(len(images))
    return poisoning(x, labels, index).mul(255).byte()


# ---------------------------------------------------------------------------------------------------------
# end to end: their victim training on released images


def run_victim(workdir: Path, task: dict) -> None:
    """Their train_cl_baseline (the `--baseline` path: PIL augmentations of their set_loader, two crops) on the
    uint8 images handed over (clean, or poisoned as released), `epochs` epochs with their warm-up and cosine;
    saves the encoder's state dict each epoch and resumes from it."""
    from torchvision import transforms

    main, util = REF["main"], REF["util"]
    opt = options(task)
    opt.baseline = True
    util.set_seed(opt.seed)
    inputs = torch.load(workdir / "inputs.pt", weights_only=True)
    data = inputs["images"].permute(0, 2, 3, 1).contiguous().numpy()
    model, criterion = build(opt, task)
    optimizer = torch.optim.SGD(model.module.backbone.parameters(), lr=opt.learning_rate, momentum=opt.momentum,
                                weight_decay=opt.weight_decay)  # main.set_optimizer's encoder optimiser
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    view = transforms.Compose([  # set_loader's baseline transform, verbatim in its settings
        transforms.RandomResizedCrop(size=opt.size, scale=(0.2, 1.)), transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2), transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)])
    dataset = Rows(data, inputs["labels"].tolist(), util.TwoCropTransform(view))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=opt.batch_size // opt.nprocs,
                                         num_workers=int(task.get("workers", 0)), sampler=sampler, drop_last=True)
    ckpt, start, history = workdir / "checkpoint.pt", 1, []
    state = torch.load(ckpt, weights_only=False) if ckpt.is_file() else None
    if state is not None:
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, history = state["epoch"] + 1, state["history"]
    for epoch in range(start, opt.epochs + 1):
        t0 = time.perf_counter()
        util.adjust_learning_rate(opt, optimizer, epoch)
        sampler.set_epoch(epoch)
        loss = main.train_cl_baseline(loader, model, criterion, optimizer, epoch, opt)
        history.append({"epoch": epoch, "loss": float(loss), "lr": optimizer.param_groups[0]["lr"],
                        "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)
        save(ckpt, {"epoch": epoch, "model": model.module.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(), "history": history})
    save(workdir / "outputs.pt", {"encoder": encoder_of(model.module, opt).state_dict(), "history": history})


def encoder_of(model, opt: Namespace) -> torch.nn.Module:
    """The victim's ResNet (features before any head), as their linear evaluation takes it."""
    b = model.backbone
    return {"SimCLR": lambda: b.encoder, "MoCov2": lambda: b.encoder_q.encoder,
            "BYOL": lambda: b.backbone.encoder}[opt.cl_alg]()


def run_augment(workdir: Path, task: dict) -> None:
    """Their perturbation gradient through kornia-pil's augmentations, averaged over `draws` draws, twice
    (two independent means, for the noise floor), for the weights and delta handed over (eval mode, as their
    perturbation turn)."""
    util = REF["util"]
    opt = options(task)
    inputs = torch.load(workdir / "inputs.pt", weights_only=True)
    opt.dataset_size = opt.batch_size = len(inputs["images"])
    model, criterion = build(opt, task)
    model.module.initialize_delta(input_delta=inputs["delta"].clone())
    model.module.load_state_dict({**inputs["state"], "delta": inputs["delta"]})
    model.eval()
    util.set_model_backbone_grad(opt.cl_alg, model, flag=False)
    x = inputs["images"].float().div(255)
    index, labels = torch.arange(len(x)), inputs["labels"]
    torch.manual_seed(task["seed"])
    means, losses = [], []
    for _ in range(2):
        total = torch.zeros_like(model.module.delta)
        for _ in range(task["draws"]):
            model.module.delta.grad = None
            out = model(x, index, labels=labels)
            loss = criterion(torch.cat(util.GatherLayer.apply(out["features"]), dim=0))
            loss.backward()
            total += model.module.delta.grad
            losses.append(float(loss))
        means.append(total / task["draws"])
    save(workdir / "outputs.pt", {"means": torch.stack(means), "losses": torch.tensor(losses)})


TASKS = {"cp": run_cp, "victim": run_victim, "augment": run_augment}


def main(argv: list[str]) -> int:
    name, workdir, root = argv[0], Path(argv[1]), Path(argv[2])
    task = json.loads((workdir / "task.json").read_text())
    torch.set_num_threads(int(task.get("threads", 1)))
    load_reference(root)
    init_group(workdir)
    if name not in TASKS:
        sys.modules.setdefault("benchmark.parity.refside", sys.modules[__name__])  # one REF when run as __main__
        from benchmark.parity import steps_ref  # the step-level comparisons' reference side
        return steps_ref.main(name, workdir, task, REF)
    TASKS[name](workdir, task)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
