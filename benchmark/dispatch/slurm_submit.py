"""Slurm submission: the pending jobs as job arrays (one per dependency, victims afterok on their poison job),
a refused sbatch as a one-line error, and the wait until every job has ended (states from squeue)."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import submitit

from . import slurm_jobs
from . import status as status_mod
from .jobs import JobCall, Submission
from .ledger import read_ledger, record_failure, write_ledger
from .plan import Job, Plan
from .progress import Progress
from .slurm_settings import job_request

POLL_S = 2.0  # how often states are read at first (then less often, up to:)
SLURM_POLL_MAX_S = 30.0


def submit_slurm(plan: Plan, pending: list[Job], earlier: dict[str, Job], states: dict[str, Any], executor,
                 folder: Path, options, make_call: Callable[[Job], JobCall], *, store=None,
                 results=None, wait: bool = True) -> list[Submission]:
    """Cancel the jobs blocked behind a failed poison job, submit the poisons, the poisons made from them (CP-S
    after CP-C) and the victims as arrays, each afterok on what it needs; then wait unless `wait` is False."""
    slurm_jobs.quiet_sacct_warnings()
    blocked = [j for j in pending if states[j.key].state == "blocked"]
    if blocked:  # waiting on Slurm for a poison job that failed: cancelled here, submitted again below
        slurm_jobs.scancel([states[j.key].job_id for j in blocked])
        print(f"cancelled {len(blocked)} blocked job(s) (their poison job can never succeed); submitting "
              "them again with their poison")
    poisons = [j for j in pending if j.kind == "poison" and j.depends_on is None]
    derived = [j for j in pending if j.kind == "poison" and j.depends_on is not None]  # CP-S after its CP-C
    victims = [j for j in pending if j.kind == "victim"]
    sent: list[Submission] = []  # submitted so far (named when sbatch refuses a later job)
    ids = {key: states[key].job_id for key in earlier}  # afterok on a poison still queued from before
    for group in (poisons, derived, victims):
        subs = submit_arrays(plan, group, ids, executor, folder, options, make_call, sent, store)
        ids.update({s.job.key: str(s.handle.job_id) for s in subs})
    if wait:
        wait_slurm(plan, [s.job for s in sent] + list(earlier.values()), store, results=results,
                   parallel=options.slurm.get("array_parallelism", options.parallel))
    return sent


def submit_arrays(plan: Plan, jobs: list[Job], ids: dict[str, str], executor, folder: Path, options,
                  make_call: Callable[[Job], JobCall], sent: list[Submission], store=None) -> list[Submission]:
    """One job array per dependency (the jobs after one poison job, or after none), each capped at
    `array_parallelism` tasks at a time, with afterok on that poison job's array task, and asking for the
    time and memory of its largest job (unless a flag or the profile sets them). Appends to `sent`."""
    groups: dict[str | None, list[Job]] = {}
    for job in jobs:
        groups.setdefault(ids.get(job.depends_on) if job.depends_on else None, []).append(job)
    out: list[Submission] = []
    for after, group in groups.items():
        extra = dict(options.slurm.get("additional_parameters", {}))
        if after:
            extra["dependency"] = f"afterok:{after}"
        request = job_request(group, options.slurm, options.max_time_min)
        executor.update_parameters(slurm_additional_parameters=extra, **request,
                                   name=group[0].name if len(group) == 1 else f"{plan.grid}-{group[0].kind}s")
        with refused_submissions(folder, sent):
            with executor.batch():
                handles = [executor.submit(make_call(job)) for job in group]
        subs = [Submission(job, handle, write_ledger(store, plan.scale, job, handle, options.cluster))
                for job, handle in zip(group, handles)]
        out += subs
        sent.extend(subs)
    return out


@contextlib.contextmanager
def refused_submissions(folder: Path, submitted: list[Submission]) -> Iterator[None]:
    """Turn sbatch's refusal (submitit's FailedJobError, a 40-line traceback) into a one-line error, and
    remove the job pickles and submission scripts submitit left for the refused job."""
    logs = submitit.core.utils.JobPaths.get_first_id_independent_folder(folder)
    before = set(logs.iterdir()) if logs.is_dir() else None
    try:
        yield
    except submitit.core.utils.FailedJobError as err:
        for path in (set(logs.iterdir()) if logs.is_dir() else set()) - (before or set()):
            if path.is_file() or path.is_symlink():
                path.unlink()
        for empty in (logs, logs.parent):  # <store>/logs/<scale> and <store>/logs, when made just now
            if before is None and empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
        lines = [ln.strip() for ln in str(err).splitlines() if "error" in ln.lower()] or str(err).splitlines()
        left = f"; {len(submitted)} job(s) submitted before it stay queued (bench status, bench cancel)" \
            if submitted else "; nothing was submitted"
        raise SystemExit(f"bench run: Slurm refused the job: {lines[-1] if lines else err}{left}") from None


def wait_slurm(plan: Plan, jobs: list[Job], store, *, results=None, parallel: int = 1) -> None:
    """Wait until each Slurm job has reached a final state, reading states from squeue (not sacct, which
    needs an accounting database), with a progress line per job that ends; a job whose poison job can never
    succeed is cancelled (the next `bench run` submits it again with its poison), a failed job's reason is
    kept for `bench status`."""
    watching = {j.key: j for j in jobs}
    progress = Progress(plan, len(jobs), parallel, store=store, results=results)
    ended_badly: set[str] = set()
    started = time.monotonic()
    while watching:
        ids = {key: (read_ledger(store, plan.scale, key) or {}).get("job_id", "-") for key in watching}
        try:
            seen = slurm_jobs.query(list(ids.values()))
        except slurm_jobs.SlurmUnavailable:
            seen = {}
        for key, job in list(watching.items()):
            info = seen.get(ids[key])
            if info is not None and info.state in slurm_jobs.RUNNING and key not in progress.running:
                progress.start(job)
            if info is not None and (info.state in slurm_jobs.RUNNING or (
                    not info.final and not info.never_runs and job.depends_on not in ended_badly)):
                continue  # running, or queued and able to run
            status = status_mod.job_status(job, plan, store)
            if status.state in status_mod.ACTIVE:
                continue
            del watching[key]
            if status.state == "blocked":
                slurm_jobs.scancel([status.job_id])
                ended_badly.add(key)
                line = record_failure(store, plan.scale, job, RuntimeError(
                    f"cancelled by bench run: blocked by {status.blocked_by} (its poison job can never succeed)"))
                progress.finish(job, f"{line}; the next `bench run` submits it again with its poison")
            elif status.state == "failed":
                ended_badly.add(key)
                progress.finish(job, record_failure(store, plan.scale, job, RuntimeError(status.error)), status.log)
            else:
                progress.finish(job, None if status.state == "done" else f"ended {status.shown}: {status.error}")
        if watching:
            progress.tick()
            time.sleep(min(SLURM_POLL_MAX_S, max(POLL_S, (time.monotonic() - started) / 20)))
    if jobs:
        progress.summary()
