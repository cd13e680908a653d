"""The budget curve: a CP poison's damage against its poisoning epochs.

One CP run with a schedule of `--epochs`, the poison released (as an attacker would: 8-bit) at each
`--release` epoch, a victim trained and probed on each release. `--until E` stops the CP run after the last
release up to epoch E (checkpoint saved) and tests the releases made so far; the same command with a later
`--until`, or without it, goes on from there. Everything resumes: the CP run checkpoints under the store,
each release is stored beside it, and a point whose record exists is skipped.

    python benchmark/scripts/budget_curve.py run --attack cp-s --scale mini --epochs 200 --release 8 24 72 160
    python benchmark/scripts/budget_curve.py run --attack cp-s --init random --epochs 200 --release 8 24 72 160 \
        --until 24
    python benchmark/scripts/budget_curve.py figure --scale mini      # results/figures/budget_curve.png

Each point is a JSON record under results/budget/<scale>/: the damage (with the clean and untrained
records it is measured against), the victim's final training loss on the poison beside the clean victim's,
the attacker's losses at that epoch and the wall time so far.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from attacks import ATTACKS, Poison
from attacks.spec import AttackSpec
from benchmark.jobs.poison import make_poison
from benchmark.jobs.victim import default_device, evaluate, load_split, victim_train_config
from benchmark.paths import store_root
from benchmark.records import environment, now, read_record, record_path, results_root, write_json_atomic
from benchmark.report.leaderboard import damage
from benchmark.scales import get_scale
from benchmark.specs import CONTROL, EvalSpec, VictimSpec
from victims.augment import contrastive_augment
from victims.recipes import build_model
from victims.train import fit

PAPER_CLEAN = 91.8  # CIFAR-10 SimCLR, clean and poisoned (the paper's effectiveness table)
PAPER = {"cp-s": 44.9, "cp-c": 68.0}
# what an epoch is: CP-S's is a pass of each turn over the data; CP-C's is model_step + noise_step batches
EPOCH_UNIT = {"cp-s": "poisoning epochs (a pass over the data per turn)",
              "cp-c": "poisoning epochs (the scale's model_step + noise_step batches each)"}
PAPER_UNTRAINED = 37.5  # a random ResNet-18's probe on CIFAR-10 is 35-40% (an estimate, not the paper's)


def curve_spec(args: argparse.Namespace) -> AttackSpec:
    params: dict = {"epochs": args.epochs, "release_fraction": 1.0}
    if args.attack == "cp-s":
        params["init"] = args.init
    return AttackSpec(args.attack, args.dataset, args.algorithm, "resnet18", params=params, scale=args.scale)


def curve_name(spec: AttackSpec) -> str:
    init = spec.params.get("init", "")
    return f"{spec.attack}-{spec.algorithm}{'-' + init if init else ''}-{spec.params['epochs']}ep-{spec.key[:8]}"


def point_path(out: Path, spec: AttackSpec, epoch: int) -> Path:
    return out / f"{curve_name(spec)}-at{epoch:04d}.json"


def reference(results: Path, spec: VictimSpec) -> dict | None:
    return read_record(record_path(results, spec.scale, spec.key))


def run(args: argparse.Namespace) -> None:
    scale, device = get_scale(args.scale), default_device()
    spec = curve_spec(args)
    ATTACKS.get(spec.attack)().params(spec)  # unknown or invalid settings fail here, before any work
    results = results_root(args.results)
    out = results / "budget" / args.scale
    work = store_root(args.store) / "budget" / args.scale / curve_name(spec)
    releases = sorted(e for e in set(args.release) if 1 <= e <= args.epochs)
    data = load_split(scale, args.dataset, "train", data_root=args.data_root, store=args.store)
    snapshots = {e: work / f"release-{e:04d}.safetensors" for e in releases}
    attack = ATTACKS.get(spec.attack)()
    reports: dict[int, dict] = {}
    report_path = work / "releases.json"
    if report_path.is_file():
        reports = {int(k): v for k, v in json.loads(report_path.read_text()).items()}
    until = args.epochs if args.until is None else args.until
    missing = [e for e in releases if not snapshots[e].is_file() and e <= until]
    if missing:
        for needed in attack.requires(spec):
            attack.inputs[needed.key] = make_poison(needed, data_root=args.data_root, store=args.store,
                                                    device=device)
        started = time.perf_counter()

        def save(epoch: int, poison: Poison, history: list[dict]) -> None:
            poison.save(snapshots[epoch])
            reports[epoch] = {"model_loss": history[-1]["model_loss"], "noise_loss": history[-1]["noise_loss"],
                              "cp_seconds": round(sum(h["seconds"] for h in history), 1),
                              "checksum": poison.checksum}
            write_json_atomic(report_path, {str(k): v for k, v in sorted(reports.items())})
            print(f"released at epoch {epoch}: {snapshots[epoch]} ({time.perf_counter() - started:.0f} s this run)")

        attack.snapshot_epochs, attack.on_snapshot = set(missing), save
        attack.stop_after = max(missing) if args.until is not None else None
        attack.generate(spec, data.images, data.labels, data.index, device=device, workdir=work / "work")
    clean_spec = VictimSpec(args.victim, "resnet18", args.dataset, None, args.scale)
    clean = reference(results, clean_spec)
    untrained = reference(results, VictimSpec(CONTROL, "resnet18", args.dataset, None, args.scale))
    for epoch in releases:
        path = point_path(out, spec, epoch)
        if path.is_file() or not snapshots[epoch].is_file():
            continue
        poison = Poison.load(snapshots[epoch])
        config = victim_train_config(clean_spec)
        source = scale.source(args.dataset)
        torch.manual_seed(clean_spec.seed)
        algorithm, _, _ = build_model(args.victim, "resnet18", args.scale, data.num_classes,
                                      input_size=source.input_size)
        result = fit(algorithm, data.images, data.labels, config, contrastive_augment(source.input_size, args.dataset),
                     device=device, perturbation=poison.perturbation_for(data.index),
                     checkpoint=work / f"victim-{args.victim}-{epoch:04d}-{poison.checksum[:12]}.pt")
        metrics, _ = evaluate(algorithm.encoder, scale, clean_spec, EvalSpec((args.dataset,)), device=device,
                              data_root=args.data_root, store=args.store)
        accuracy = metrics[args.dataset]["probe_best"]
        clean_acc = clean and clean["metrics"][args.dataset]["probe_best"]
        untrained_acc = untrained and untrained["metrics"][args.dataset]["probe_best"]
        write_json_atomic(path, {
            "kind": "budget_point", "scale": args.scale, "attack": spec.to_dict(), "epoch": epoch,
            "victim": args.victim, "probe_best": accuracy, "probe_final": metrics[args.dataset]["probe_final"],
            "damage": damage(clean_acc, accuracy, untrained_acc), "clean": clean_acc, "untrained": untrained_acc,
            "clean_record": clean and clean["key"], "untrained_record": untrained and untrained["key"],
            "victim_final_loss": result.history[-1]["loss"],
            "clean_victim_final_loss": clean and clean["history"][-1]["loss"],
            "attacker": reports.get(epoch, {}), "victim_train_s": round(result.wall_s, 1),
            "poison_checksum": poison.checksum, "data": scale.describe_data(args.dataset), "created": now(),
            **environment()})
        print(f"{curve_name(spec)} at epoch {epoch}: probe {accuracy:.2f}, damage "
              f"{damage(clean_acc, accuracy, untrained_acc)}")


def figure(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = results_root(args.results) / "budget" / args.scale
    points = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    points = [p for p in points if p["damage"] is not None]
    if not points:
        raise SystemExit(f"no budget points with a damage under {folder}: run `budget_curve.py run` first (the "
                         "damage needs the scale's clean and untrained records of the victim)")
    attacks = sorted({p["attack"]["attack"] for p in points}, reverse=True)  # cp-s first
    fig, axes = plt.subplots(1, len(attacks), figsize=(6 * len(attacks), 3.6), squeeze=False)
    low = min(0.0, min(p["damage"] for p in points) - 0.05)
    for ax, attack in zip(axes[0], attacks):
        curves: dict[str, list[dict]] = {}
        for p in (p for p in points if p["attack"]["attack"] == attack):
            a = p["attack"]
            init = a["params"].get("init", "cp-c")
            start = f"{'uniform' if init == 'random' else init} start, " if attack == "cp-s" else ""
            curves.setdefault(f"{a['algorithm']}, {start}{a['params']['epochs']}-epoch schedule", []).append(p)
        for label, pts in curves.items():
            pts.sort(key=lambda p: p["epoch"])
            ax.plot([p["epoch"] for p in pts], [p["damage"] for p in pts], marker="o", label=label)
        paper = (PAPER_CLEAN - PAPER[attack]) / (PAPER_CLEAN - PAPER_UNTRAINED)
        ax.axhline(paper, color="0.4", linestyle="--",
                   label=f"paper, {attack.upper()} on SimCLR ({paper:.2f}; untrained ~37.5%)")
        ax.axhline(0.4, color="0.7", linestyle=":", label="goal 0.4")
        ax.set_xscale("log")
        epochs = sorted({p["epoch"] for pts in curves.values() for p in pts})
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.minorticks_off()
        ax.set_ylim(low, 1.0)
        ax.set_xlabel(EPOCH_UNIT[attack])
        ax.set_ylabel("damage")
        ax.set_title(f"{attack.upper()}: damage against the poisoning budget ({args.scale} scale, "
                     f"{points[0]['data']})", fontsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    out = results_root(args.results) / "figures" / "budget_curve.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "figure"):
        p = sub.add_parser(name)
        p.add_argument("--scale", default="mini")
        p.add_argument("--results", help="results folder (default: $BENCH_RESULTS or ./results)")
        if name == "run":
            p.add_argument("--attack", default="cp-s", choices=["cp-s", "cp-c"])
            p.add_argument("--algorithm", default="simclr", help="the attacker's algorithm")
            p.add_argument("--victim", default="simclr", help="the victim's algorithm")
            p.add_argument("--dataset", default="cifar10")
            p.add_argument("--init", default="cp-c", choices=["cp-c", "random"], help="CP-S start")
            p.add_argument("--epochs", type=int, required=True, help="the CP schedule's length")
            p.add_argument("--release", type=int, nargs="+", required=True, help="epochs to release at")
            p.add_argument("--until", type=int, help="stop the CP run after the last release up to this epoch "
                                                     "(its checkpoint saved); run again without it to go on")
            p.add_argument("--data-root", help="data sets folder (default: $BENCH_DATA)")
            p.add_argument("--store", help="artifact store (default: $BENCH_STORE or ./store)")
    args = parser.parse_args()
    (run if args.command == "run" else figure)(args)


if __name__ == "__main__":
    main()
