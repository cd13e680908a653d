"""The `bench` command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Sequence

from tabulate import tabulate

from .data import DATASETS, SPLITS, DatasetNotFoundError, describe
from victims.registry import UnknownNameError

from .paths import DATA_ENV, STORE_ENV, data_roots

if TYPE_CHECKING:
    from .plan import Plan


def cmd_run(args: argparse.Namespace) -> int:
    """Plan a grid's jobs, skip the done ones, check data and folders, submit the rest (--dry-run: print)."""
    from .run_command import run_grid

    return run_grid(args)


def cmd_datasets(args: argparse.Namespace) -> int:
    """List every data set, where it was found (or why not), its splits, sizes and classes."""
    from .preflight import how_to_provide

    roots = data_roots(args.data_root)
    print(f"data roots: {', '.join(map(str, roots)) or f'(none: pass --data-root or set {DATA_ENV})'}")
    rows, problems = [], []
    for name, info in DATASETS.items():
        if name == "synthetic":
            rows.append([name, info.title, "generated", "-", "640 (default)", "160 (default)", info.num_classes])
            continue
        sizes, where, classes = {}, "", ""
        for split in SPLITS:
            try:
                found, split_info = describe(name, split, args.data_root)
            except (DatasetNotFoundError, OSError, ValueError) as err:
                sizes[split] = "missing"
                if args.verbose:
                    problems.append(f"{name}/{split}: {err}")
                continue
            sizes[split] = f"{split_info.count:,}"
            where, classes = f"{found.kind}: {found.path.parent if found.kind == 'image folder' else found.path}", \
                len(split_info.classes)
        status = "found" if all(s != "missing" for s in sizes.values()) else \
            "partial" if any(s != "missing" for s in sizes.values()) else "not found"
        rows.append([name, info.title, status, where or "-", sizes["train"], sizes["test"], classes or "-"])
        if status != "found" and not args.verbose:
            problems.append(how_to_provide(name))
    print(tabulate(rows, headers=["name", "data set", "status", "where", "train", "test", "classes"]))
    if problems:
        print("\nnot found" + ("" if args.verbose else " (bench datasets -v lists every path tried and how to provide it)")
              + ":\n  " + "\n  ".join(problems))
    return 0


def cmd_victim(args: argparse.Namespace) -> int:
    """Train and evaluate one victim, write its record, print its metrics."""
    from victims.distributed import init_from_env, rank

    from .poison_job import make_poison
    from .specs import EvalSpec, VictimSpec
    from .victim_job import run_victim

    init_from_env()  # several processes when launched by torchrun (or submitit with --gpus-per-job)

    from .grids import attack_spec

    poison = attack_spec(args.attack, args.dataset, args.algorithm, args.scale)  # made with ResNet-18, as in the paper
    spec = VictimSpec(args.algorithm, args.arch, args.dataset, poison, scale=args.scale, seed=args.seed)
    eval_spec = EvalSpec(tuple(args.eval or [args.dataset]))
    made = make_poison(poison, data_root=args.data_root, store=args.store, device=args.device) \
        if poison is not None and not poison.is_clean else None
    record = run_victim(spec, eval_spec, poison=made, data_root=args.data_root, store=args.store,
                        results=args.results, device=args.device)
    if rank() != 0:
        return 0
    rows = [[name, f"{m['probe_best']:.2f}", f"{m['probe_final']:.2f}", f"{m['knn']:.2f}",
             f"{m['test_accuracy']:.2f}" if "test_accuracy" in m else "-"] for name, m in record["metrics"].items()]
    print(f"{args.algorithm} / {args.arch} on {record['data']['train']} [{args.scale}]; "
          f"train {record['timing']['train_s']} s, total {record['timing']['total_s']} s")
    print(tabulate(rows, headers=["probed", "probe best", "probe final", "kNN", "test acc"]))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    """Throughput of one training step, ours against the usual PIL pipeline, and its FLOP rate."""
    if args.what == "attack":
        return perf_attack_command(args)
    from .perf import perf_train

    r = perf_train(args.algorithm, args.arch, args.scale, steps=args.steps, batch_size=args.batch_size,
                   data_root=args.data_root, store=args.store, device=args.device, workers=args.workers,
                   synthetic=args.synthetic)
    print(f"bench perf train: {args.algorithm} / {args.arch}, {args.scale} scale, batch {r.batch_size}, "
          f"{r.device}, {torch_threads()} threads")
    print(f"  ours (uint8 on device, kornia views):      {r.ours_images_per_s:9.1f} images/s")
    print(f"  reference (PIL transforms + DataLoader):   {r.reference_images_per_s:9.1f} images/s")
    print(f"  ratio ours / reference:                    {r.ratio:9.2f}x")
    print(f"  network alone (views made beforehand):     {r.network_images_per_s:9.1f} images/s = "
          f"{r.ceiling:.2f}x the reference: the most any input pipeline can reach with this network here")
    print(f"  step: {r.step_gflop:.2f} GFLOP, achieved {r.achieved_gflops:.1f} GFLOP/s = "
          f"{100 * r.achieved_gflops / r.matmul_peak_gflops:.1f}% of a dense matmul peak of "
          f"{r.matmul_peak_gflops:.1f} GFLOP/s measured in this run")
    return 0


def perf_attack_command(args: argparse.Namespace) -> int:
    """Seconds per outer epoch, perturbation-phase throughput, peak memory, and the poison's size."""
    from .perf import cifar10_poison_sizes, perf_attack

    r = perf_attack(args.attack, args.algorithm, args.arch, args.scale, epochs=args.epochs, images=args.images,
                    synthetic=args.synthetic, data_root=args.data_root, store=args.store, device=args.device)
    mb = 1e6
    print(f"bench perf attack: {r.attack} with {args.algorithm} / {args.arch}, {args.scale} scale, {r.images} "
          f"{'synthetic' if args.synthetic else 'CIFAR-10'} images, {r.epochs} outer epoch(s), {r.device}, "
          f"{torch_threads()} threads")
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


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def cmd_grids(args: argparse.Namespace) -> int:
    """List the grids with their cell and job counts."""
    from .grids import GRIDS, distinct_jobs, grid_cells

    rows = []
    for name in GRIDS.names():
        cells = grid_cells(name, args.scale)
        poisons, victims = distinct_jobs(cells)
        rows.append([name, len(cells), len(poisons), len(victims), len(poisons) + len(victims)])
    print(tabulate(rows, headers=["grid", "cells", "poison jobs", "victim jobs", "jobs"]))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the registered attacks, algorithms and architectures with their origin; 1 if a plugin failed."""
    from .plugins import listing, render_listing

    rows, failures = listing()
    print(render_listing(rows, failures))
    return 1 if failures else 0


def cmd_cells(args: argparse.Namespace) -> int:
    """List a grid's cells with their state (done when the victim's record has the probed metric)."""
    from .grids import grid_cells
    from .paper import paper_values
    from .records import read_record, record_path, results_root

    results = results_root(args.results)
    rows = []
    for cell in grid_cells(args.grid, args.scale):
        record = read_record(record_path(results, args.scale, cell.victim.key))
        metric = (record or {}).get("metrics", {}).get(cell.probe)
        paper = paper_values(cell.grid).get((cell.row, cell.column))
        value = metric.get("test_accuracy", metric["probe_best"]) if metric else None
        rows.append([cell.grid, cell.row, cell.column, "done" if metric else "pending",
                     "-" if value is None else f"{value:.1f}", "-" if paper is None else f"{paper:.1f}",
                     cell.victim.key[:12]])
    print(tabulate(rows, headers=["grid", "row", "column", "state", "ours", "paper", "victim job"]))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Every cell's state (done / running / queued / blocked / failed / pending) with its job id, log and last
    error."""
    from collections import Counter

    from .plan import make_plan
    from .status import plan_status

    plan = make_plan(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                     columns=args.columns)
    status = plan_status(plan, args.store)
    jobs = {j.key: j for j in plan.jobs}
    rows = []
    for cell in plan.cells:
        victim = status.get(cell.victim.key)
        if victim is None:  # its attack is not registered
            rows.append([cell.grid, cell.row, cell.column, "skipped", "-", "-", "attack not registered"])
            continue
        shown, what = victim, "victim"
        poison_key = jobs[cell.victim.key].depends_on
        while poison_key and victim.state in ("pending", "queued") and status[poison_key].state != "done":
            shown, what = status[poison_key], "poison"  # the cell waits on its poison: show that job
            poison_key = jobs[poison_key].depends_on
        state = shown.shown if what == "victim" else f"{shown.shown} ({what})"
        rows.append([cell.grid, cell.row, cell.column, state, shown.job_id, shown.log, shown.error])
    print(tabulate(rows, headers=["grid", "row", "column", "state", "job id", "log", "last error"]))
    counts = Counter(s.state for s in status.values())
    print(f"jobs: {len(plan.jobs)} ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); "
          f"`bench run` resubmits the failed, blocked and pending ones, nothing else")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the running, queued and blocked jobs of a grid (scancel on Slurm, SIGINT then SIGKILL locally)."""
    from .plan import make_plan
    from .status import cancel

    plan = make_plan(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                     columns=args.columns)
    cancelled = cancel(plan, args.store)
    for job, status in cancelled:
        print(f"cancelled {job.name} (job {status.job_id}, was {status.state})")
    print(f"cancelled {len(cancelled)} job(s) of grid {args.grid} at the {args.scale} scale")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    """The paper's claims checked against a scale's records; --write publishes, --check compares."""
    from .claims import check_claims, claims_path, differences, to_json
    from .records import results_root
    from .tables import write_text_atomic

    results = results_root(args.results)
    claims = check_claims(results, args.scale)
    for c in claims:
        print(f"[{c.status:>12}] {c.statement}\n               {json.dumps(c.numbers)}")
        if c.spreads:
            print(f"               seed spread: {json.dumps(c.spreads)}")
        for note in c.notes:
            print(f"               note: {note}")
    current, path = to_json(claims, args.scale), claims_path(results, args.scale)
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(current, indent=1) + "\n")
        print(f"wrote {path}")
    if args.check:
        try:
            published = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"no published claims to check at {path} ({e}); run `bench claims --scale "
                             f"{args.scale} --write` after the runs")
        problems = differences(published, current)
        for p in problems:
            print(f"MISMATCH {p}")
        print(f"{len(problems)} claim(s) differ from {path}" if problems else f"the records give {path}")
        return 1 if problems else 0
    return 0


def parse_eps(text: str) -> float:
    """`8/255` or `0.0314`, as a float in [0, 1] units."""
    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps {text!r} is not a number or a fraction such as 8/255") from None


def cmd_import_poison(args: argparse.Namespace) -> int:
    """Verify a poison made elsewhere and store it as the attack `ext:NAME` (see docs/import.md)."""
    from .import_poison import import_poison

    imported = import_poison(args.name, args.path, dataset=args.dataset, scale=args.scale, eps=args.eps,
                             split=args.split, units=args.units, content=args.content, per=args.per, key=args.key,
                             replace=args.replace, data_root=args.data_root, store=args.store)
    p, a = imported.poison, imported.assumed
    print(f"read {args.path} as {a['content']} in {a['units']} units, laid out {a['layout']}, one per {a['per']}"
          " (override with --content, --units, --per)")
    for note in imported.notes:
        print(f"  {note}")
    print(f"imported {p.spec['attack']}: {tuple(p.delta.shape)} int8 poison for {args.dataset} at the {args.scale} "
          f"scale, eps {p.eps_pixels}/255, checksum {p.checksum[:16]}; use it as `--attack {p.spec['attack']}` or "
          f"`bench run --grid effectiveness --rows {p.spec['attack']}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from attacks import ATTACKS

    parser = argparse.ArgumentParser(prog="bench", description="cp-bench: indiscriminate poisoning attacks on "
                                     "contrastive learning (He, Zha & Katabi, ICLR 2023), as a benchmark.")
    common = argparse.ArgumentParser(add_help=False)
    for target, default in ((parser, None), (common, argparse.SUPPRESS)):
        target.add_argument("--data-root", metavar="DIR", default=default,
                            help=f"folder holding the data sets (default: ${DATA_ENV})")
        target.add_argument("--store", metavar="DIR", default=default,
                            help=f"artifact store for caches, poisons, checkpoints (default: ${STORE_ENV} or ./store)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **k: _add_parser(*a, parents=[common], **k)  # type: ignore[method-assign]

    p = sub.add_parser("datasets", help="list the data sets, where they were found, their splits and sizes")
    p.add_argument("-v", "--verbose", action="store_true", help="show every path tried for missing data sets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("victim", help="train and evaluate one victim and write its record")
    p.add_argument("--algorithm", required=True, help="simclr, moco, byol, supervised, or untrained (control)")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--scale", default="smoke")
    p.add_argument("--seed", type=int, default=1112)
    p.add_argument("--attack", default="none",
                   help=f"train on data poisoned by this attack: {', '.join(ATTACKS)}; cp-s@moco = CP-S made "
                        "with MoCo (default: made with the victim's algorithm); ext:NAME = a poison imported "
                        "with `bench import-poison`")
    p.add_argument("--eval", nargs="*", metavar="DATASET", help="data sets to probe (default: the training set)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.set_defaults(func=cmd_victim)

    p = sub.add_parser("perf", help="performance benchmarks (perf train: our step against the usual pipeline; "
                                    "perf attack: a CP attack's epoch, throughput, memory, poison size)")
    p.add_argument("what", choices=["train", "attack"])
    p.add_argument("--attack", default="cp-s", help="perf attack: cp-s (from a random start) or cp-c")
    p.add_argument("--epochs", type=int, default=1, help="perf attack: outer epochs timed")
    p.add_argument("--images", type=int, help="perf attack: time on this many images (default: the scale's set)")
    p.add_argument("--synthetic", action="store_true",
                   help="generated images of the scale's size instead of CIFAR-10 (e.g. on a GPU node without data)")
    p.add_argument("--algorithm", default="simclr")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--scale", default="mini")
    p.add_argument("--steps", type=int, default=5, help="timed steps of each pipeline")
    p.add_argument("--batch-size", type=int, help="override the scale's batch size (e.g. 512 for the paper's)")
    p.add_argument("--workers", type=int, help="DataLoader workers of the reference (default: CPU count)")
    p.add_argument("--device")
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("grids", help="list the grids (one per paper table) with cell and job counts")
    p.add_argument("--scale", default="mini")
    p.set_defaults(func=cmd_grids)

    p = sub.add_parser("plugins", help="list the registered attacks, algorithms and architectures, built-in or "
                       "from which plugin (distribution and version), and plugins that failed to load")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("cells", help="list a grid's cells with their state and values")
    p.add_argument("--grid", required=True)
    p.add_argument("--scale", default="mini")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.set_defaults(func=cmd_cells)

    p = sub.add_parser("claims", help="check the paper's claims against a scale's records (no training)")
    p.add_argument("--scale", default="mini")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--write", action="store_true", help="publish the result as <results>/claims/<scale>.json")
    p.add_argument("--check", action="store_true", help="fail when the records differ from the published file")
    p.set_defaults(func=cmd_claims)

    for name, func, text in (("status", cmd_status, "every cell's job state (done / running / queued / failed / "
                                                    "pending), job id, log path and last error"),
                             ("cancel", cmd_cancel, "cancel a grid's running and queued jobs")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--grid", required=True)
        p.add_argument("--scale", default="mini")
        p.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows of the grid")
        p.add_argument("--columns", nargs="+", metavar="COLUMN", help="only these columns")
        p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
        p.set_defaults(func=func)

    from .figures import add_figures_command
    from .report_cli import add_report_commands

    add_report_commands(sub)
    add_figures_command(sub)

    from .import_poison import CONTENTS, PERS, UNITS

    p = sub.add_parser("import-poison", help="verify a poison made by other code and store it as the attack "
                       "ext:NAME (formats: docs/import.md)")
    p.add_argument("name", help="the name: the poison becomes the attack ext:NAME")
    p.add_argument("path", help=".npy, .npz, .safetensors, .pt/.pth (tensors only) or a folder <class>/<image>")
    p.add_argument("--dataset", required=True, help="the data set it poisons (its training split at --scale)")
    p.add_argument("--scale", default="mini", help="smoke, mini or paper: the split it must cover (default: mini)")
    p.add_argument("--eps", type=parse_eps, default=8 / 255, help="the L-inf bound it was made with (default 8/255)")
    p.add_argument("--split", default="train", choices=["train"], help="the split it covers (victims train on train)")
    p.add_argument("--units", default="auto", choices=UNITS, help="value range of the array (default: detected)")
    p.add_argument("--content", default="auto", choices=CONTENTS,
                   help="perturbations (delta) or the poisoned images themselves (default: detected)")
    p.add_argument("--per", default="auto", choices=PERS, help="one perturbation per sample or per class")
    p.add_argument("--key", help="the array's name in an .npz, .safetensors or torch file with several")
    p.add_argument("--replace", action="store_true", help="replace an imported poison of the same name")
    p.set_defaults(func=cmd_import_poison)

    p = sub.add_parser("run", help="run a grid: plan its jobs, skip done ones, submit the rest")
    p.add_argument("--grid", required=True, help="effectiveness, downstream, architectures, transfer_supervised, "
                   "transfer_algorithms, motivation or all")
    p.add_argument("--scale", default="smoke", help="smoke, mini or paper")
    p.add_argument("--cluster", default="local", choices=["local", "slurm", "debug"],
                   help="local: subprocesses on this machine; slurm: a Slurm cluster; debug: in this process")
    p.add_argument("--rows", nargs="+", metavar="ROW", help="only these rows of the grid (e.g. none random)")
    p.add_argument("--columns", nargs="+", metavar="COLUMN", help="only these columns (e.g. cifar10/simclr)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                   help="run each selected cell once per seed (victim and poison); the tables show the mean and "
                   "the spread over the seeds measured (default: the single seed 1112)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and a GPU-hour estimate, submit nothing")
    p.add_argument("--parallel", type=int, default=1, help="jobs at a time (local) / array parallelism (slurm)")
    p.add_argument("--gpus-per-job", type=int, default=0, help="run each job as N processes under torch.distributed")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads per local job (default: $OMP_NUM_THREADS "
                   "when set, else the cores shared out among the --parallel jobs)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    slurm = p.add_argument_group("slurm", "with --cluster slurm: a profile (slurm/profiles/NAME.toml) and overrides")
    slurm.add_argument("--profile", help="profile name or path")
    slurm.add_argument("--partition")
    slurm.add_argument("--time", type=int, metavar="MINUTES", help="time limit per job (default: from the "
                       "scale's job size, see --dry-run); jobs past it requeue and resume from their checkpoint")
    slurm.add_argument("--mem-gb", type=int, help="memory per job (default: from the scale's job size)")
    slurm.add_argument("--cpus", type=int, help="CPUs per task")
    slurm.add_argument("--account")
    slurm.add_argument("--qos")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from attacks import PoisonError
    from attacks.external import ExternalNameError

    from .import_poison import ImportPoisonError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownNameError, DatasetNotFoundError, ExternalNameError, ImportPoisonError, PoisonError) as err:
        print(f"bench {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
