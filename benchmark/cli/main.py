"""The `bench` command line."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from victims.registry import UnknownNameError

from ..data import DatasetNotFoundError
from ..paths import DATA_ENV, STORE_ENV


def cmd_run(args: argparse.Namespace) -> int:
    """Plan a grid's jobs, skip the done ones, check data and folders, submit the rest (--dry-run: print)."""
    from .run import run_grid

    return run_grid(args)


def cmd_datasets(args: argparse.Namespace) -> int:
    """List every data set, where it was found (or why not), its splits, sizes and classes."""
    from ..dispatch.preflight import datasets_command

    return datasets_command(args.data_root, verbose=args.verbose)


def cmd_victim(args: argparse.Namespace) -> int:
    """Train and evaluate one victim, write its record, print its metrics."""
    from ..jobs.victim import victim_command, victim_spec

    try:  # the spec checks its defense, parameters and ratio: refused before any poison is made or victim trained
        spec = victim_spec(args.algorithm, args.arch, args.dataset, attack=args.attack, scale=args.scale,
                           seed=args.seed, defense=defense_spec(args), poison_ratio=args.poison_ratio)
    except ValueError as err:
        print(f"bench victim: {err}", file=sys.stderr)
        return 2
    return victim_command(spec, eval_datasets=args.eval, data_root=args.data_root, store=args.store,
                          results=args.results, device=args.device)


def defense_spec(args: argparse.Namespace):
    """`--defense NAME --defense-param key=value ...` as a DefenseSpec (None without --defense)."""
    from defenses import DefenseSpec

    if args.defense is None:
        if args.defense_param:
            raise ValueError("--defense-param needs --defense NAME")
        return None
    params = {}
    for item in args.defense_param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--defense-param {item!r}: expected key=value (e.g. quality=10)")
        params[key] = parse_number(value)
    return DefenseSpec(args.defense, params)


def parse_number(text: str) -> int | float | str:
    """`10` -> 10, `0.5` or `8/255` -> float, anything else stays text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return parse_eps(text)
    except argparse.ArgumentTypeError:
        return text


def cmd_perf(args: argparse.Namespace) -> int:
    """perf train: throughput of one training step, ours against the usual PIL pipeline, and its FLOP rate;
    perf attack: seconds per outer epoch, perturbation-phase throughput, peak memory, and the poison's size."""
    from ..jobs import perf

    common = dict(data_root=args.data_root, store=args.store, device=args.device, synthetic=args.synthetic)
    if args.what == "defense":
        return perf.perf_defense_command(args.scale, images=args.images, **common)
    if args.what == "attack":
        return perf.perf_attack_command(args.attack, args.algorithm, args.arch, args.scale, epochs=args.epochs,
                                        images=args.images, **common)
    return perf.perf_train_command(args.algorithm, args.arch, args.scale, steps=args.steps,
                                   batch_size=args.batch_size, workers=args.workers, **common)


def cmd_grids(args: argparse.Namespace) -> int:
    """List the grids with their cell and job counts."""
    from ..grids import grids_command

    return grids_command(args.scale)


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the registered attacks, algorithms and architectures with their origin; 1 if a plugin failed."""
    from ..plugins import listing, render_listing

    rows, failures = listing()
    print(render_listing(rows, failures))
    return 1 if failures else 0


def cmd_cells(args: argparse.Namespace) -> int:
    """List a grid's cells with their state (done when the victim's record has the probed metric)."""
    from ..dispatch.status import cells_command

    return cells_command(args.grid, args.scale, args.results)


def cmd_status(args: argparse.Namespace) -> int:
    """Every cell's state (done / running / queued / blocked / failed / pending) with its job id, log and last
    error."""
    from ..dispatch.status import status_command

    return status_command(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                          columns=args.columns)


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel the running, queued and blocked jobs of a grid (scancel on Slurm, SIGINT then SIGKILL locally)."""
    from ..dispatch.status import cancel_command

    return cancel_command(args.grid, args.scale, results=args.results, store=args.store, rows=args.rows,
                          columns=args.columns)


def cmd_claims(args: argparse.Namespace) -> int:
    """The paper's claims checked against a scale's records; --write publishes, --check compares."""
    from ..report.claims import claims_command

    return claims_command(args.results, args.scale, write=args.write, check=args.check)


def parse_eps(text: str) -> float:
    """`8/255` or `0.0314`, as a float in [0, 1] units."""
    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps {text!r} is not a number or a fraction such as 8/255") from None


def cmd_import_poison(args: argparse.Namespace) -> int:
    """Verify a poison made elsewhere and store it as the attack `ext:NAME` (see docs/import.md)."""
    from ..jobs.import_poison import import_command

    return import_command(args.name, args.path, dataset=args.dataset, scale=args.scale, eps=args.eps,
                          split=args.split, units=args.units, content=args.content, per=args.per, key=args.key,
                          replace=args.replace, data_root=args.data_root, store=args.store)


def build_parser() -> argparse.ArgumentParser:
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

    _add_job_parsers(sub)  # datasets, victim, perf
    _add_listing_parsers(sub)  # grids, plugins, cells, claims
    _add_watch_parsers(sub)  # status, cancel

    from ..report.figures import add_figures_command
    from .report import add_report_commands

    add_report_commands(sub)
    add_figures_command(sub)
    _add_import_parser(sub)
    _add_run_parser(sub)
    from ..parity.cli import add_parity_command

    add_parity_command(sub)
    from ..pilots.cli import add_pilot_command

    add_pilot_command(sub)
    return parser


def _add_job_parsers(sub: argparse._SubParsersAction) -> None:
    from attacks import ATTACKS

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
    p.add_argument("--defense", metavar="NAME", help="what the victim does against a poison (`bench plugins` lists "
                   "the defenses; docs/defenses.md); default: none")
    p.add_argument("--defense-param", action="append", metavar="KEY=VALUE",
                   help="a defense parameter over its scale's default, e.g. quality=30 (repeatable)")
    p.add_argument("--poison-ratio", type=float, default=1.0, metavar="R",
                   help="poison only this share of the training set (a seeded class-balanced subset; default 1)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.set_defaults(func=cmd_victim)

    p = sub.add_parser("perf", help="performance benchmarks (perf train: our step against the usual pipeline; "
                                    "perf attack: a CP attack's epoch, throughput, memory, poison size; "
                                    "perf defense: each data defense's time on the training set)")
    p.add_argument("what", choices=["train", "attack", "defense"])
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


def _add_listing_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--write", action="store_true", 
                   help="publish the result as <results>/claims/<scale>.json and its table as .md")
    p.add_argument("--check", action="store_true", help="fail when the records differ from the published file")
    p.set_defaults(func=cmd_claims)


def _add_watch_parsers(sub: argparse._SubParsersAction) -> None:
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


def _add_import_parser(sub: argparse._SubParsersAction) -> None:
    from ..jobs.import_poison import CONTENTS, PERS, UNITS

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


def _add_run_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--parallel", type=int, metavar="N", help="jobs at a time (local, default: one per core, at "
                   "most 4, or 1 with a GPU) / array parallelism (slurm, default 1 or the profile's)")
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


def main(argv: Sequence[str] | None = None) -> int:
    from attacks import PoisonError
    from attacks.external import ExternalNameError

    from ..jobs.import_poison import ImportPoisonError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownNameError, DatasetNotFoundError, ExternalNameError, ImportPoisonError, PoisonError) as err:
        print(f"bench {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
