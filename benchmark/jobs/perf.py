"""`bench perf train`: throughput of our training step against the usual PIL + DataLoader pipeline, and
the step's achieved FLOP rate against a dense matrix-multiply peak, all measured in the same run."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from victims.augment import contrastive_augment, to_float
from victims.distributed import default_device
from victims.normalization import normalization_for
from victims.recipes import build_model
from victims.train import Trainer

from ..data import ImageData, load_dataset
from ..scales import get_scale
from .splits import load_split


class PilViews(Dataset):
    """torchvision's usual recipe: uint8 HWC arrays -> PIL image -> two transformed views per item."""

    def __init__(self, images: torch.Tensor, size: int, dataset: str):
        from torchvision import transforms as T

        self.images = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
        mean, std = normalization_for(dataset)
        self.transform = T.Compose([
            T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), T.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.images[i])
        return self.transform(image), self.transform(image)


@dataclass
class PerfResult:
    ours_images_per_s: float
    reference_images_per_s: float
    step_gflop: float
    achieved_gflops: float
    matmul_peak_gflops: float
    batch_size: int
    device: str
    network_images_per_s: float = 0.0  # the network alone on ready-made views: no input pipeline at all

    @property
    def ratio(self) -> float:
        return self.ours_images_per_s / self.reference_images_per_s

    @property
    def ceiling(self) -> float:
        """The most any input pipeline could gain over the reference with this network on this machine."""
        return self.network_images_per_s / self.reference_images_per_s


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a dense float32 (bfloat16 on CUDA) n x n matrix multiply."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_like(size: int, count: int) -> ImageData:
    """Generated CIFAR-shaped data (10 classes) of at least `count` images at `size` px: throughput does not
    depend on the pixels, so machines without the data set (a GPU node) can still be measured."""
    return load_dataset("synthetic", "train", per_class=-(-count // 10), image_size=size)


def perf_train(algorithm: str = "simclr", arch: str = "resnet18", scale_name: str = "mini", *, steps: int = 5,
               batch_size: int | None = None, data_root=None, store=None, device=None,
               workers: int | None = None, synthetic: bool = False) -> PerfResult:
    """Images per second of our step (uint8 on the device, kornia views, channels_last, AMP on CUDA) and of
    the reference (PIL transforms in a DataLoader with `workers` processes, same model, batch, optimiser)."""
    scale = get_scale(scale_name)
    device = torch.device(device) if device else default_device()
    config = scale.train[algorithm]
    if batch_size:
        config = type(config)(**{**config.__dict__, "batch_size": batch_size})
    source = scale.source("cifar10")
    needed = config.batch_size * (steps + 1)
    data = synthetic_like(source.input_size, needed) if synthetic else \
        load_split(scale, "cifar10", "train", data_root=data_root, store=store)
    images = data.images[torch.arange(needed) % len(data)]
    labels = data.labels[torch.arange(needed) % len(data)]

    def model():
        torch.manual_seed(0)  # drawn from the global RNG, which then moves on as the run always had it
        return build_model(algorithm, arch, scale_name, data.num_classes, input_size=source.input_size)[0]

    trainer = Trainer(model(), config, contrastive_augment(source.input_size, "cifar10"), device, steps_per_epoch=10**6)
    gpu_images = images.to(device)
    batches = [slice(i * config.batch_size, (i + 1) * config.batch_size) for i in range(steps + 1)]
    trainer.train_step(gpu_images[batches[0]], labels[batches[0]].to(device))  # warm-up
    _sync(device)
    start = time.perf_counter()
    for b in batches[1:]:
        trainer.train_step(gpu_images[b], labels[b].to(device))
    _sync(device)
    ours = steps * config.batch_size / (time.perf_counter() - start)

    network = network_only_rate(Trainer(model(), config, trainer.augment, device, steps_per_epoch=10**6),
                                trainer.views(to_float(gpu_images[batches[0]]), 0), labels[batches[0]], steps)

    flops = FlopCounterMode(display=False)
    with flops:
        trainer.train_step(gpu_images[batches[0]], labels[batches[0]].to(device))
    step_flop = flops.get_total_flops()

    reference = model().to(device)
    optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=config.lr,
                                momentum=config.momentum, weight_decay=config.weight_decay)
    workers = os.cpu_count() if workers is None else workers
    loader = DataLoader(PilViews(images, source.input_size, "cifar10"), batch_size=config.batch_size,
                        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    reference.train()
    count, start = 0, None
    for i, (v1, v2) in enumerate(loader):
        loss = reference(v1.to(device), v2.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reference.on_step_end()
        if i == 0:  # the first batch pays for starting the workers
            _sync(device)
            start = time.perf_counter()
        else:
            count += len(v1)
    _sync(device)
    reference_rate = count / (time.perf_counter() - start)
    step_seconds = config.batch_size / ours
    return PerfResult(ours, reference_rate, step_flop / 1e9, step_flop / step_seconds / 1e9, matmul_peak(device),
                      config.batch_size, str(device), network)


def network_only_rate(trainer: Trainer, views: list[torch.Tensor], labels: torch.Tensor, steps: int) -> float:
    """Images per second of our step without its views (forward, backward, optimiser step on one batch of views
    made beforehand): the ceiling of every input pipeline."""
    trainer.step_on_views(views, labels)  # warm-up
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step_on_views(views, labels)
    _sync(trainer.device)
    return steps * len(labels) / (time.perf_counter() - start)


@dataclass
class AttackPerf:
    attack: str
    images: int
    epochs: int
    seconds_per_epoch: float
    perturbation_images_per_s: float  # images x PGD steps per second in the perturbation phase
    peak_memory_bytes: int  # CUDA: peak allocated; CPU: the process's peak resident set
    working_delta_bytes: int  # the delta being optimised (int8 where exact)
    device: str


def perf_attack(attack: str = "cp-s", algorithm: str = "simclr", arch: str = "resnet18", scale_name: str = "mini",
                *, epochs: int = 1, images: int | None = None, synthetic: bool = False, data_root=None, store=None,
                device=None, progress: bool = True) -> AttackPerf:
    """Time `epochs` outer epochs of a contrastive poisoning attack (CP-S from a random start, so that no
    CP-C is needed) on the scale's CIFAR-10 (or `images` of it)."""
    import resource

    from attacks import ATTACKS
    from attacks.spec import AttackSpec

    if attack not in ("cp-s", "cp-c"):
        raise ValueError(f"bench perf attack times the CP attacks (cp-s, cp-c), not {attack!r}")
    scale = get_scale(scale_name)
    device = torch.device(device) if device else default_device()
    source = scale.source("cifar10")
    data = synthetic_like(source.input_size, images or 10_000) if synthetic else \
        load_split(scale, "cifar10", "train", data_root=data_root, store=store)
    take = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:images or len(data)]
    x, y, ids = data.images[take], data.labels[take], torch.arange(len(take))
    params = {"epochs": epochs, **({"init": "random"} if attack == "cp-s" else {})}
    spec = AttackSpec(attack, "cifar10", algorithm, arch, params=params, scale=scale_name)
    runner = ATTACKS.get(attack)()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runner.generate(spec, x, y, ids, device=device, progress=progress)
    history = runner.history
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return AttackPerf(attack, len(take), epochs, sum(h["seconds"] for h in history) / len(history),
                      sum(h["noise_images_per_s"] for h in history) / len(history), int(peak),
                      runner.working_bytes, str(device))


def cifar10_poison_sizes() -> dict[str, int]:
    """On-disk and in-memory bytes of a CP-S poison of the whole CIFAR-10 training set (50,000 x 3 x 32 x 32),
    against the same delta in float32 (the sizes depend only on the shape)."""
    import tempfile
    from pathlib import Path

    from attacks import Poison
    from attacks.spec import AttackSpec

    delta = torch.zeros(50_000, 3, 32, 32, dtype=torch.int8)
    poison = Poison.create(delta, "sample", 8 / 255, AttackSpec("cp-s", "cifar10", "simclr", "resnet18"))
    with tempfile.TemporaryDirectory() as tmp:
        disk = poison.save(Path(tmp) / "cp-s.safetensors").stat().st_size
    return {"disk": disk, "memory": poison.nbytes, "float32": delta.numel() * 4}


def perf_train_command(algorithm: str, arch: str, scale_name: str, **options) -> int:
    """`bench perf train`: `perf_train` (the same options), printed."""
    r = perf_train(algorithm, arch, scale_name, **options)
    print(f"bench perf train: {algorithm} / {arch}, {scale_name} scale, batch {r.batch_size}, "
          f"{r.device}, {torch.get_num_threads()} threads")
    print(f"  ours (uint8 on device, kornia views):      {r.ours_images_per_s:9.1f} images/s")
    print(f"  reference (PIL transforms + DataLoader):   {r.reference_images_per_s:9.1f} images/s")
    print(f"  ratio ours / reference:                    {r.ratio:9.2f}x")
    print(f"  network alone (views made beforehand):     {r.network_images_per_s:9.1f} images/s = "
          f"{r.ceiling:.2f}x the reference: the most any input pipeline can reach with this network here")
    print(f"  step: {r.step_gflop:.2f} GFLOP, achieved {r.achieved_gflops:.1f} GFLOP/s = "
          f"{100 * r.achieved_gflops / r.matmul_peak_gflops:.1f}% of a dense matmul peak of "
          f"{r.matmul_peak_gflops:.1f} GFLOP/s measured in this run")
    return 0


def perf_attack_command(attack: str, algorithm: str, arch: str, scale_name: str, *, synthetic: bool = False,
                        **options) -> int:
    """`bench perf attack`: `perf_attack` (the same options), printed: seconds per outer epoch,
    perturbation-phase throughput, peak memory, and the poison's size."""
    r = perf_attack(attack, algorithm, arch, scale_name, synthetic=synthetic, **options)
    mb = 1e6
    print(f"bench perf attack: {r.attack} with {algorithm} / {arch}, {scale_name} scale, {r.images} "
          f"{'synthetic' if synthetic else 'CIFAR-10'} images, {r.epochs} outer epoch(s), {r.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  seconds per outer epoch:                   {r.seconds_per_epoch:9.1f} s")
    print(f"  perturbation phase:                        {r.perturbation_images_per_s:9.1f} images x steps / s")
    print(f"  peak memory:                               {r.peak_memory_bytes / mb:9.1f} MB "
          f"({'CUDA allocated' if r.device.startswith('cuda') else 'process resident set'})")
    print(f"  working delta ({r.images} images):          {r.working_delta_bytes / mb:9.1f} MB")
    sizes = cifar10_poison_sizes()
    print(f"  CIFAR-10 CP-S poison (50,000 images): {sizes['disk'] / mb:.1f} MB on disk, "
          f"{sizes['memory'] / mb:.1f} MB in memory, vs {sizes['float32'] / mb:.1f} MB as float32 "
          f"({sizes['disk'] / sizes['float32']:.3f} and {sizes['memory'] / sizes['float32']:.3f} of it)")
    return 0


def perf_defense(scale_name: str = "mini", *, data_root=None, store=None, synthetic: bool = False,
                 images: int | None = None) -> tuple[int, dict[str, float]]:
    """(images, seconds per data defense): each registered data defense's time on the scale's CIFAR-10
    training set (or its first `images`), at its default parameters, one after the other in one run (their
    ratios are what to compare)."""
    from defenses import DEFENSES, DefenseSpec

    scale = get_scale(scale_name)
    data = synthetic_like(scale.source("cifar10").input_size, images or 1000) if synthetic else \
        load_split(scale, "cifar10", "train", data_root=data_root, store=store)
    x = data.images[:images] if images else data.images
    out = {}
    for name in DEFENSES.names():
        defense = DEFENSES.get(name)()
        if defense.acts_on != "data" or name == "none":
            continue
        p = defense.params(DefenseSpec(name), scale_name)
        started = time.perf_counter()
        defense.transform(x, p, seed=0)
        out[name] = time.perf_counter() - started
    return len(x), out


def perf_defense_command(scale_name: str, *, images: int | None = None, **options) -> int:
    """`bench perf defense`: each data defense's time on the scale's training set."""
    options.pop("device", None)
    count, seconds = perf_defense(scale_name, images=images, **options)
    print(f"bench perf defense: {scale_name} scale, {count} images, {torch.get_num_threads()} threads")
    for name, s in seconds.items():
        print(f"  {name:<20} {s:8.2f} s  ({count / s:10.0f} images/s)")
    return 0
