"""The local scheduler: keep `parallel` jobs running on this machine (or run them one by one in this process,
`debug`), each started as soon as a slot is free and the poison it needs is made."""
from __future__ import annotations

import time
from typing import Callable

from . import status as status_mod
from .jobs import Submission
from .ledger import record_failure
from .plan import Job, Plan
from .progress import Progress


def run_order(jobs: list[Job]) -> list[Job]:
    """The order a local run starts jobs in: the victims that need no poison (or one made already) first, then
    each poison followed by the jobs it is made for (its CP-S, then their victims), so that a run stopped
    part-way leaves finished cells rather than a pile of poisons. A job still waits for its poison."""
    after: dict[str | None, list[Job]] = {}
    keys = {j.key for j in jobs}
    for job in jobs:
        after.setdefault(job.depends_on if job.depends_on in keys else None, []).append(job)
    roots = after.get(None, [])
    ordered: list[Job] = []

    def visit(job: Job) -> None:
        ordered.append(job)
        for child in sorted(after.get(job.key, []), key=lambda j: j.kind != "victim"):  # its victims first
            visit(child)

    for job in [j for j in roots if j.kind == "victim"] + [j for j in roots if j.kind == "poison"]:
        visit(job)
    return ordered


def run_local(plan: Plan, jobs: list[Job], earlier: dict[str, Job], submit: Callable[[Job], Submission], *,
              parallel: int, in_process: bool, store=None, results=None, poll_s: float = 2.0) -> list[Submission]:
    """Run `jobs` with at most `parallel` at a time; a job starts when a slot is free and the poison it needs
    (made by this run, or by an earlier `bench run` still at it: `earlier`) is made; the jobs after a failed
    poison are left out. `in_process` (debug): one after the other. Prints progress; returns the submissions."""
    submissions: list[Submission] = []
    queue, running, step = run_order(jobs), [], max(1, parallel)
    unfinished = {j.key for j in jobs} | set(earlier)
    earlier, failed = dict(earlier), set()
    progress = Progress(plan, len(jobs), step, results=results, store=store)
    while queue or running:
        for key, job in list(earlier.items()):  # still made by an earlier `bench run`?
            state = status_mod.job_status(job, plan, store).state
            if state not in status_mod.ACTIVE:
                del earlier[key]
                unfinished.discard(key)
                if state == "failed":
                    failed.add(key)
        for job in list(queue):
            if job.depends_on in failed:
                queue.remove(job)
                failed.add(job.key)
                unfinished.discard(job.key)
                progress.not_run(job, "the job it needs failed")
            elif len(running) < step and job.depends_on not in unfinished:
                queue.remove(job)
                running.append(submit(job))
                submissions.append(running[-1])
                progress.start(job)
                if in_process:
                    break  # run it now (result() below), then look at the queue again
        done = [sub for sub in running if in_process or sub.handle.done()]
        if not done:
            progress.tick()
            time.sleep(poll_s)
            continue
        for sub in done:
            running.remove(sub)
            error = outcome(sub, plan.scale, store)
            if error is not None:
                failed.add(sub.job.key)
            paths = getattr(sub.handle, "paths", None)
            progress.finish(sub.job, error, str(paths.stderr) if paths is not None and error is not None else None)
            unfinished.discard(sub.job.key)
    if jobs:
        progress.summary()
    return submissions


def outcome(sub: Submission, scale: str, store) -> str | None:
    """None when the job succeeded; else the last line of its error (also kept in its ledger entry)."""
    try:
        sub.handle.result()
    except Exception as err:  # noqa: BLE001 - a failed job must not stop the grid
        return record_failure(store, scale, sub.job, err)
    return None


