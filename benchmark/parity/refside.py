"""The authors' code, run in this process on a CPU: `python -m benchmark.parity.refside TASK WORKDIR REF`
(tasks: their CP loop, their victim loop, the augmentation gap, and the step-level cases of steps_ref).
`theirs` does the loading and the adaptations below.

Adapted from outside its files only (nothing of theirs is copied or edited):
- our modules are imported first (with the installed kornia), then every `kornia` module is dropped from
  `sys.modules` and the checkout and its kornia-pil go first on `sys.path`, so their `import kornia` is the
  patched kornia 0.5.11 they ran;
- shims for what a current stack lacks: `torchvision.transforms.RandomSizedCrop` (an alias of
  RandomResizedCrop that kornia-pil's crop sampler calls, removed from torchvision since), a stand-in
  `torch.utils.tensorboard` (their main.py imports its SummaryWriter; nothing is logged), and `.cuda()` a
  no-op (their MoCo batch shuffle moves its permutation to the GPU);
- a gloo process group of world size 1 stands for their 4-process NCCL launch, and their DDP wrapper is
  kept (their loop reaches the model through `.module`); the task's `gradient_share` gives their parameters
  the share of each gradient the launch would (SimCLR: 1/4, `theirs.build`);
- `torch.clamp` and `Tensor.clamp` get back the gradient torch 1.x gave at their bounds (`theirs.torch1_clamp`,
  docs/parity.md: without it their perturbation freezes at the eps bound on a current torch);
- their ResNet builder is handed our network (`model_dict[arch]`) where a scale narrower than theirs is
  compared, and their BYOL constructor gets the scale's head sizes and momentum.
The task reads `WORKDIR/task.json` (+ tensors in `WORKDIR/inputs.pt`) and writes `WORKDIR/outputs.pt`.
"""
from __future__ import annotations

import json
import math
import sys
import time
from argparse import Namespace
from pathlib import Path

import torch

from . import theirs
from .theirs import REF, build, init_group, load_reference, options, save

Rows = theirs.Rows


def run_cp(workdir: Path, task: dict) -> None:
    """Their CP main loop (main_worker's epochs over train_contrastive_poisoning), checkpointed every epoch;
    at `release_epoch` the delta and the images it releases are saved in `outputs.pt`. `warmup_steps` > 0 adds a linear warm-up of the encoder's
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
