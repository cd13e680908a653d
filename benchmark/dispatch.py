"""Dispatch: one submitit job per planned job; poisons before the victims that need them.

`debug` runs in this process, `local` in subprocesses on this machine (at most `parallel` at a time),
`slurm` on a cluster (victims depend on their poison with afterok). Each job is Checkpointable: when
requeued after a time-out or pre-emption it resumes from its own checkpoint files.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import submitit
import torch

from .paths import store_root
from .plan import Job, Plan
from .records import results_root, write_json_atomic

CLUSTERS = ("local", "slurm", "debug")
POLL_S = 2.0  # local: how often finished jobs are looked for; slurm: at first (then less often, up to:)
SLURM_POLL_MAX_S = 30.0


class JobCall(submitit.helpers.Checkpointable):
    """The picklable call of one job. Requeued as is: the training loop resumes from its checkpoint."""

    def __init__(self, job: Job, data_root: str | None, store: str, results: str, threads: int | None = None):
        self.job, self.data_root, self.store, self.results = job, data_root, store, results
        self.threads = threads  # CPU threads: the same count gives the same numbers on every executor

    def __call__(self) -> dict[str, Any]:
        import torch

        from victims.distributed import init_from_env, rank

        if self.threads:
            torch.set_num_threads(self.threads)
        from .slurm_jobs import quiet_sacct_warnings

        quiet_sacct_warnings()  # where Slurm has no accounting database

        if self.job.kind == "poison":
            from .poison_job import make_poison, poison_report

            poison = make_poison(self.job.attack, data_root=self.data_root, store=self.store)
            report = poison_report(self.job.attack, self.store) or {}
            return {"job": self.job.key, "poison": poison.checksum,
                    "resumed_from_epoch": report.get("resumed_from_epoch", 0)}
        from .specs import EvalSpec
        from .victim_job import run_victim

        init_from_env()
        record = run_victim(self.job.victim, EvalSpec(self.job.probes), data_root=self.data_root,
                            store=self.store, results=self.results)
        return {"job": self.job.key, "rank": rank(), "record": record.get("key")}


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


@dataclass
class Submission:
    job: Job
    handle: Any  # submitit.Job
    ledger: Path


@dataclass
class DispatchOptions:
    cluster: str = "local"
    parallel: int = 1  # local: jobs at a time; slurm: array parallelism
    gpus_per_job: int = 0
    slurm: dict = field(default_factory=dict)  # partition, timeout_min, mem_gb, cpus_per_task, account, qos
    max_time_min: int | None = None  # slurm: the partition's time limit (caps the default time limits)


def ledger_dir(store, scale: str) -> Path:
    return store_root(store) / "runs" / scale


def write_ledger(store, scale: str, job: Job, handle, cluster: str) -> Path:
    path = ledger_dir(store, scale) / f"{job.key[:20]}.json"
    paths = handle.paths if hasattr(handle, "paths") else None
    write_json_atomic(path, {"job": job.key, "name": job.name, "kind": job.kind, "cluster": cluster,
                             "job_id": str(handle.job_id), "submitted": time.time(),
                             "stdout": str(paths.stdout) if paths else None,
                             "stderr": str(paths.stderr) if paths else None})
    return path


def record_failure(store, scale: str, job: Job, err: BaseException) -> str:
    """Keep the last line of a failed job's error in its ledger entry (for `bench status`); return it."""
    text = str(err).strip()
    line = text.splitlines()[-1][:200] if text else repr(err)
    entry = read_ledger(store, scale, job.key)
    if entry is not None:
        write_json_atomic(ledger_dir(store, scale) / f"{job.key[:20]}.json", {**entry, "error": line})
    return line


def read_ledger(store, scale: str, key: str) -> dict | None:
    try:
        return json.loads((ledger_dir(store, scale) / f"{key[:20]}.json").read_text())
    except (OSError, ValueError):
        return None


def make_executor(options: DispatchOptions, folder: Path):
    if options.cluster == "debug":
        return submitit.DebugExecutor(folder)
    if options.cluster == "local":
        executor = submitit.LocalExecutor(folder)
        params: dict[str, Any] = {"timeout_min": int(options.slurm.get("timeout_min", 24 * 60))}
        if options.gpus_per_job:
            params.update(gpus_per_node=options.gpus_per_job, tasks_per_node=options.gpus_per_job)
        executor.update_parameters(**params)
        return executor
    if options.cluster == "slurm":
        # up to 20 requeues after time-outs or pre-emptions (submitit's default: 3); each resumes its checkpoint
        executor = submitit.AutoExecutor(folder, cluster="slurm", slurm_max_num_timeout=20)
        params = {f"slurm_{k}": v for k, v in options.slurm.items()  # time and memory: per array, job_request
                  if v is not None and k not in ("array_parallelism", "additional_parameters", "timeout_min",
                                                 "mem_gb")}
        if options.gpus_per_job:
            params.update(slurm_gpus_per_node=options.gpus_per_job, slurm_tasks_per_node=options.gpus_per_job)
        executor.update_parameters(slurm_array_parallelism=options.slurm.get("array_parallelism", options.parallel),
                                   **params)
        return executor
    raise ValueError(f"unknown cluster {options.cluster!r}; valid clusters: {', '.join(CLUSTERS)}")


def dispatch(plan: Plan, options: DispatchOptions, *, data_root=None, store=None, results=None,
             wait: bool = True) -> list[Submission]:
    """Submit the plan's pending jobs. On local, `parallel` at a time, each as soon as a slot is free and its
    poison is made (debug: one after the other, in this process); on Slurm, jobs go in arrays (one per
    dependency) and each depends (afterok) on the job it builds on."""
    store_path, results_path = str(store_root(store)), str(results_root(results))
    folder = store_root(store) / "logs" / plan.scale / "%j"
    executor = make_executor(options, folder)
    from .status import ACTIVE, job_status

    # a job still running or queued from an earlier `bench run` is not submitted twice (the jobs after it wait
    # for it); failed and pending ones are
    states = {j.key: job_status(j, plan, store) for j in plan.pending}
    earlier = {j.key: j for j in plan.pending if states[j.key].state in ACTIVE}
    pending = [j for j in plan.pending if j.key not in earlier]
    poisons = [j for j in pending if j.kind == "poison" and j.depends_on is None]
    derived = [j for j in pending if j.kind == "poison" and j.depends_on is not None]  # CP-S after its CP-C
    victims = [j for j in pending if j.kind == "victim"]
    submissions: list[Submission] = []
    sent: list[Submission] = []  # slurm: submitted so far (named when sbatch refuses a later job)
    failed: set[str] = set()

    def submit(jobs: list[Job]) -> list[Submission]:
        out = []
        for job in jobs:
            if options.cluster != "debug":
                executor.update_parameters(name=job.name)
            handle = executor.submit(JobCall(job, data_root, store_path, results_path, torch.get_num_threads()))
            out.append(Submission(job, handle, write_ledger(store, plan.scale, job, handle, options.cluster)))
        return out

    def finish(sub: Submission) -> None:
        try:
            sub.handle.result()
        except Exception as err:  # noqa: BLE001 - a failed job must not stop the grid
            failed.add(sub.job.key)
            print(f"job {sub.job.name} failed: {record_failure(store, plan.scale, sub.job, err)}")

    def run_local(jobs: list[Job]) -> None:
        """Keep `parallel` jobs running: a job starts as soon as a slot is free and the poison it needs (if
        this run makes it) is made; the jobs after a failed poison are left out. `debug` runs them in order."""
        if not wait:  # submitted at once, nothing waited for
            submissions.extend(submit(jobs))
            return
        queue, running, step = run_order(jobs), [], max(1, options.parallel)
        unfinished = {j.key for j in jobs} | set(earlier)
        while queue or running:
            for key, job in list(earlier.items()):  # still made by an earlier `bench run`?
                state = job_status(job, plan, store).state
                if state not in ACTIVE:
                    del earlier[key]
                    unfinished.discard(key)
                    if state == "failed":
                        failed.add(key)
            for job in list(queue):
                if job.depends_on in failed:
                    queue.remove(job)
                    failed.add(job.key)
                    unfinished.discard(job.key)
                    print(f"job {job.name} not run: the job it needs failed")
                elif len(running) < step and job.depends_on not in unfinished:
                    queue.remove(job)
                    running += submit([job])
                    submissions.append(running[-1])
                    if options.cluster == "debug":
                        break  # run it now (result() below), then look at the queue again
            done = [sub for sub in running if options.cluster == "debug" or sub.handle.done()]
            if not done:
                time.sleep(POLL_S)
                continue
            for sub in done:
                running.remove(sub)
                finish(sub)
                unfinished.discard(sub.job.key)

    def submit_arrays(jobs: list[Job], ids: dict[str, str]) -> list[Submission]:
        """Slurm: one job array per dependency (the jobs after one poison job, or after none), each capped
        at `array_parallelism` tasks at a time, with afterok on that poison job's array task, and asking
        for the time and memory of its largest job (unless a flag or the profile sets them)."""
        from .slurm import job_request

        groups: dict[str | None, list[Job]] = {}
        for job in jobs:
            groups.setdefault(ids.get(job.depends_on) if job.depends_on else None, []).append(job)
        out = []
        for after, group in groups.items():
            extra = dict(options.slurm.get("additional_parameters", {}))
            if after:
                extra["dependency"] = f"afterok:{after}"
            request = job_request(group, options.slurm, options.max_time_min)
            executor.update_parameters(slurm_additional_parameters=extra, **request,
                                       name=group[0].name if len(group) == 1 else f"{plan.grid}-{group[0].kind}s")
            with refused_submissions(folder, sent):
                with executor.batch():
                    handles = [executor.submit(JobCall(job, data_root, store_path, results_path)) for job in group]
            out += [Submission(job, handle, write_ledger(store, plan.scale, job, handle, options.cluster))
                    for job, handle in zip(group, handles)]
            sent.extend(out[-len(group):])
        return out

    if options.cluster == "slurm":
        from . import slurm_jobs

        slurm_jobs.quiet_sacct_warnings()
        blocked = [j for j in pending if states[j.key].state == "blocked"]
        if blocked:  # waiting on Slurm for a poison job that failed: cancelled here, submitted again below
            slurm_jobs.scancel([states[j.key].job_id for j in blocked])
            print(f"cancelled {len(blocked)} blocked job(s) (their poison job can never succeed); submitting "
                  "them again with their poison")
        poison_subs = submit_arrays(poisons, {})
        ids = {key: states[key].job_id for key in earlier}  # afterok on a poison still queued from before
        ids.update({s.job.key: str(s.handle.job_id) for s in poison_subs})
        derived_subs = submit_arrays(derived, ids)
        ids.update({s.job.key: str(s.handle.job_id) for s in derived_subs})
        submissions.extend(poison_subs + derived_subs)
        submissions.extend(submit_arrays(victims, ids))
        if wait:
            wait_slurm(plan, [s.job for s in submissions] + list(earlier.values()), store)
        return submissions
    run_local(poisons + derived + victims)
    return submissions


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


def wait_slurm(plan: Plan, jobs: list[Job], store) -> None:
    """Wait until each Slurm job has reached a final state, reading states from squeue (not sacct, which
    needs an accounting database); a job whose poison job can never succeed is cancelled (the next
    `bench run` submits it again with its poison), a failed job's reason is kept for `bench status`."""
    from . import slurm_jobs
    from .status import ACTIVE, job_status

    watching = {j.key: j for j in jobs}
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
            if info is not None and (info.state in slurm_jobs.RUNNING or (
                    not info.final and not info.never_runs and job.depends_on not in ended_badly)):
                continue  # running, or queued and able to run
            status = job_status(job, plan, store)
            if status.state in ACTIVE:
                continue
            del watching[key]
            if status.state == "blocked":
                slurm_jobs.scancel([status.job_id])
                ended_badly.add(key)
                line = record_failure(store, plan.scale, job, RuntimeError(
                    f"cancelled by bench run: blocked by {status.blocked_by} (its poison job can never succeed)"))
                print(f"job {job.name} {line}; the next `bench run` submits it again with its poison")
            elif status.state == "failed":
                ended_badly.add(key)
                print(f"job {job.name} failed: {record_failure(store, plan.scale, job, RuntimeError(status.error))}")
        if watching:
            time.sleep(min(SLURM_POLL_MAX_S, max(POLL_S, (time.monotonic() - started) / 20)))
