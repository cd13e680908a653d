"""Checks `bench run` makes before it submits anything: every data set the plan's jobs need is present, and
every folder they write to (results, store) is writable. A failed check is one clear message, not a job
failing later on a cluster with the reason in its log."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from tabulate import tabulate

from ..data import DATASETS, SPLITS, DatasetNotFoundError, describe
from ..data.catalog import locate
from ..paths import DATA_ENV, STORE_ENV, data_roots, store_root
from ..records import RESULTS_ENV, results_root
from ..scales import get_scale
from .plan import Plan


def how_to_provide(name: str) -> str:
    """The line `bench datasets` prints for a data set it did not find."""
    return f"{name}: provide {DATASETS[name].how_to}"


def datasets_command(data_root=None, verbose: bool = False) -> int:
    """`bench datasets`: every data set, where it was found (or why not), its splits, sizes and classes."""
    roots = data_roots(data_root)
    print(f"data roots: {', '.join(map(str, roots)) or f'(none: pass --data-root or set {DATA_ENV})'}")
    rows, problems = [], []
    for name, info in DATASETS.items():
        if name == "synthetic":
            rows.append([name, info.title, "generated", "-", "640 (default)", "160 (default)", info.num_classes])
            continue
        sizes, where, classes = {}, "", ""
        for split in SPLITS:
            try:
                found, split_info = describe(name, split, data_root)
            except (DatasetNotFoundError, OSError, ValueError) as err:
                sizes[split] = "missing"
                if verbose:
                    problems.append(f"{name}/{split}: {err}")
                continue
            sizes[split] = f"{split_info.count:,}"
            where, classes = f"{found.kind}: {found.path.parent if found.kind == 'image folder' else found.path}", \
                len(split_info.classes)
        status = "found" if all(s != "missing" for s in sizes.values()) else \
            "partial" if any(s != "missing" for s in sizes.values()) else "not found"
        rows.append([name, info.title, status, where or "-", sizes["train"], sizes["test"], classes or "-"])
        if status != "found" and not verbose:
            problems.append(how_to_provide(name))
    print(tabulate(rows, headers=["name", "data set", "status", "where", "train", "test", "classes"]))
    if problems:
        print("\nnot found" + ("" if verbose else " (bench datasets -v lists every path tried and how to provide it)")
              + ":\n  " + "\n  ".join(problems))
    return 0


def needed_datasets(plan: Plan) -> dict[str, set[str]]:
    """The data sets on disk (after the scale's stand-ins) that the plan's pending jobs read: name -> the
    grid data sets they stand for. Generated data (`synthetic`) needs nothing."""
    scale = get_scale(plan.scale)
    needed: dict[str, set[str]] = {}
    for job in plan.pending:
        names = [job.attack.dataset] if job.kind == "poison" else [job.victim.dataset, *job.probes]
        for name in names:
            source = scale.source(name).dataset
            if source != "synthetic":
                needed.setdefault(source, set()).add(name)
    return needed


def missing_datasets(plan: Plan, data_root=None) -> list[str]:
    """A line per needed data set with a split that is not found (as `bench datasets` says it)."""
    missing = []
    for name, stands_for in sorted(needed_datasets(plan).items()):
        splits = []
        for split in SPLITS:
            try:
                locate(name, split, data_root)
            except (DatasetNotFoundError, OSError, ValueError):
                splits.append(split)
        if splits:
            used = ", ".join(sorted(stands_for - {name}))
            missing.append(f"{how_to_provide(name)} (missing: {'/'.join(splits)}"
                           + (f"; it stands for {used} at the {plan.scale} scale" if used else "") + ")")
    return missing


def unwritable(folder: Path, create: bool = True) -> str | None:
    """Why `folder` cannot be written (made if absent), or None when a file can be made in it. With `create`
    False (a dry run) nothing is made but a probe file, removed at once: an absent folder counts as writable
    when its nearest existing parent is."""
    existing = folder if create else next((p for p in (folder, *folder.parents) if p.exists()), folder)
    probe = existing / f".bench-write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return err.strerror or str(err)
    return None


def preflight(plan: Plan, *, data_root=None, store=None, results=None, create: bool = True) -> None:
    """SystemExit naming every problem (and the way out) when the plan's jobs could not run; nothing else.
    `create` False (a dry run): the same checks, without making the output folders."""
    problems = []
    missing = missing_datasets(plan, data_root)
    if missing:
        roots = ", ".join(map(str, data_roots(data_root))) or f"none: pass --data-root DIR or set {DATA_ENV}"
        problems.append(f"data not found (data roots: {roots}; `bench datasets -v` lists every path tried):\n  "
                        + "\n  ".join(missing))
    for folder, flag in ((results_root(results), f"--results DIR or set {RESULTS_ENV}"),
                         (store_root(store), f"--store DIR or set {STORE_ENV}")):
        why = unwritable(folder, create)
        if why:
            problems.append(f"the folder {folder} is not writable ({why}): pass {flag} to a writable folder")
    if problems:
        raise SystemExit("bench run: nothing submitted: " + "\n".join(problems))
