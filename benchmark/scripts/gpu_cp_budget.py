"""CP-S budget search at the mini scale's models and data, on a GPU (issue 4: is the mini scale's CP-S miss a
matter of budget?). Not a benchmark record: one script, numbers printed as they come.

1. Here (CPU, with the data): `python benchmark/scripts/gpu_cp_budget.py dump --out .gpudata/mini.npz`
   writes the mini CIFAR-10 training set (10,000 images) and a class-balanced test subset (`--test-per-class`).
2. There (GPU): `python benchmark/scripts/gpu_cp_budget.py run --data .gpudata/mini.npz --epochs 8 40 100`
   measures the untrained floor and the clean mini SimCLR victim, makes the mini CP-C poison, then CP-S
   from it with each budget (epochs x the mini's 5 PGD steps), each followed by a mini SimCLR victim; it
   prints each victim's probe and the damage (DESIGN.md), and starts nothing new after `--budget-s`.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from attacks import ATTACKS, generate_poison
from attacks.spec import AttackSpec
from benchmark.jobs.victim import victim_train_config
from benchmark.scales import get_scale
from benchmark.specs import VictimSpec
from victims.augment import contrastive_augment
from victims.probe import linear_probe
from victims.recipes import build_encoder, build_model
from victims.train import fit


def dump(out: str, test_per_class: int) -> None:
    from benchmark.jobs.splits import load_split

    scale = get_scale("mini")
    train = load_split(scale, "cifar10", "train")
    test = load_split(scale, "cifar10", "test")
    keep = torch.cat([torch.nonzero(test.labels == c).flatten()[:test_per_class] for c in range(10)])
    np.savez_compressed(out, train_images=train.images.numpy(), train_labels=train.labels.numpy(),
                        train_index=train.index.numpy(), test_images=test.images[keep].numpy(),
                        test_labels=test.labels[keep].numpy())
    print(f"{out}: train {len(train)} ({train.source}), test {len(keep)}")


def run(data_path: str, epochs: list[int], budget_s: float, seed: int, device: str, limit: int | None,
        known: list[float] | None = None, skip_cpc_victim: bool = False) -> None:
    started, device, scale = time.perf_counter(), torch.device(device), get_scale("mini")
    data = np.load(data_path)
    n = len(data["train_labels"])
    keep = np.arange(0, n, n // limit)[:limit] if limit else slice(None)  # --limit: a quick check, all classes
    train_x, train_y = torch.from_numpy(data["train_images"][keep]), torch.from_numpy(data["train_labels"][keep])
    index = torch.from_numpy(data["train_index"][keep])
    test_x, test_y = torch.from_numpy(data["test_images"]), torch.from_numpy(data["test_labels"])
    victim = VictimSpec("simclr", "resnet18", "cifar10", None, "mini", seed)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{name}; train {len(train_y)}, test {len(test_y)}; mini SimCLR victim "
          f"{victim_train_config(victim).epochs} epochs, probe {scale.probe}", flush=True)

    def probe(poison=None, train: bool = True) -> float:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        size = scale.source("cifar10").input_size
        if train:
            algorithm, _, _ = build_model("simclr", "resnet18", "mini", 10, input_size=size)
            fit(algorithm, train_x, train_y, victim_train_config(victim), contrastive_augment(32, "cifar10"),
                device=device, perturbation=poison.perturbation_for(index) if poison else None, progress=False)
            encoder = algorithm.encoder
        else:
            encoder = build_encoder("resnet18", "mini", size)
        result = linear_probe(encoder, train_x, train_y, test_x, test_y, num_classes=10, input_size=32,
                              normalization="cifar10", config=scale.probe, device=device)
        print(f"  victim {'trained' if train else 'untrained'}: probe {result.best_accuracy:.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        return result.best_accuracy

    floor = known[1] if known else probe(train=False)
    clean = known[0] if known else probe()

    def report(name: str, accuracy: float) -> None:
        print(f"{name}: probe {accuracy:.2f}, damage {(clean - accuracy) / (clean - floor):.2f} "
              f"(clean {clean:.2f}, untrained {floor:.2f}; {time.perf_counter() - started:.0f} s so far)", flush=True)

    def make(spec: AttackSpec, inputs=None):
        t0 = time.perf_counter()
        poison = generate_poison(spec, train_x, train_y, index, device=device, progress=False, inputs=inputs)
        print(f"{spec.attack} {spec.params or ''} made in {time.perf_counter() - t0:.0f} s", flush=True)
        return poison

    cps = AttackSpec("cp-s", "cifar10", "simclr", "resnet18", scale="mini", seed=1112)
    (cpc_spec,) = ATTACKS.get("cp-s")().requires(cps)
    cpc = make(cpc_spec)
    if not skip_cpc_victim:
        report("cp-c (mini budget)", probe(cpc))
    for e in epochs:
        if time.perf_counter() - started > budget_s:
            print(f"cp-s {e} epochs not started: past --budget-s {budget_s:.0f}", flush=True)
            continue
        spec = replace(cps, params={"epochs": e})
        report(f"cp-s {e} epochs x 5 steps", probe(make(spec, inputs={cpc_spec.key: cpc})))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--out", required=True)
    d.add_argument("--test-per-class", type=int, default=200)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--epochs", type=int, nargs="+", default=[8, 40, 100])
    r.add_argument("--budget-s", type=float, default=420)
    r.add_argument("--seed", type=int, default=1112)
    r.add_argument("--device", default="cuda")
    r.add_argument("--known", type=float, nargs=2, metavar=("CLEAN", "UNTRAINED"),
                   help="the clean victim's and the floor's probe from an earlier run on this device")
    r.add_argument("--skip-cpc-victim", action="store_true",
                   help="make CP-C (CP-S starts from it) but train no victim on it")
    r.add_argument("--limit", type=int, default=None,
                   help="N training images spread over the set (a quick check of the script)")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out, args.test_per_class)
    else:
        run(args.data, args.epochs, args.budget_s, args.seed, args.device, args.limit, args.known,
            args.skip_cpc_victim)


if __name__ == "__main__":
    main()
