"""Dispatch: one submitit job per planned job; poisons before the victims that need them.

`debug` runs in this process, `local` in subprocesses on this machine (at most `parallel` at a time:
benchmark/dispatch/local.py), `slurm` on a cluster (job arrays, victims afterok on their poison:
benchmark/dispatch/slurm_submit.py). Each job is Checkpointable: when requeued after a time-out or pre-emption it
resumes from its own checkpoint files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from ..paths import store_root
from ..records import results_root
from . import status as status_mod
from .jobs import JobCall, Submission
from .ledger import write_ledger
from .local import run_local
from .plan import Job, Plan

CLUSTERS = ("local", "slurm", "debug")
POLL_S = 0.5  # local: how often finished jobs are looked for (a smoke job takes seconds)
MAX_LOCAL_PARALLEL = 4  # the default local jobs at a time is the cores, at most this many


@dataclass
class DispatchOptions:
    cluster: str = "local"
    parallel: int = 1  # local: jobs at a time; slurm: array parallelism (bench run: `default_parallel` if unset)
    gpus_per_job: int = 0
    slurm: dict = field(default_factory=dict)  # partition, timeout_min, mem_gb, cpus_per_task, account, qos
    max_time_min: int | None = None  # slurm: the partition's time limit (caps the default time limits)
    threads: int | None = None  # local and debug: CPU threads per job (None: `job_threads`)


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_parallel(cluster: str) -> int:
    """Jobs at a time when --parallel is not given. Local without a GPU: one job per core, at most
    MAX_LOCAL_PARALLEL (each then gets `cores / parallel` threads; a smoke job spends most of its time starting
    Python and torch on one core, so two single-thread jobs on 2 cores finish a grid about twice as fast).
    Local with a GPU, debug and Slurm: 1 (on Slurm a profile's `array_parallelism` still applies)."""
    if cluster != "local":
        return 1
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(usable_cores(), MAX_LOCAL_PARALLEL))


def job_threads(threads: int | None = None, parallel: int = 1) -> int:
    """CPU threads for each local job: `threads` (--threads) when given, else $OMP_NUM_THREADS when set, else
    the cores shared out among the `parallel` jobs (at least one): more threads than cores slows every job."""
    if threads:
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, usable_cores() // max(1, parallel))


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
    dependency) and each depends (afterok) on the job it builds on. A job still running or queued from an
    earlier `bench run` is not submitted twice (the jobs after it wait for it); failed and pending ones are."""
    store_path, results_path = str(store_root(store)), str(results_root(results))
    folder = store_root(store) / "logs" / plan.scale / "%j"
    executor = make_executor(options, folder)
    states = {j.key: status_mod.job_status(j, plan, store) for j in plan.pending}
    earlier = {j.key: j for j in plan.pending if states[j.key].state in status_mod.ACTIVE}
    pending = [j for j in plan.pending if j.key not in earlier]

    if options.cluster == "slurm":
        from .slurm_submit import submit_slurm

        def slurm_call(job: Job) -> JobCall:
            return JobCall(job, data_root, store_path, results_path, options.threads)

        return submit_slurm(plan, pending, earlier, states, executor, folder, options, slurm_call, store=store,
                            results=results, wait=wait)

    threads = job_threads(options.threads, options.parallel)

    def submit(job: Job) -> Submission:
        if options.cluster != "debug":
            executor.update_parameters(name=job.name)
        handle = executor.submit(JobCall(job, data_root, store_path, results_path, threads))
        return Submission(job, handle, write_ledger(store, plan.scale, job, handle, options.cluster))

    ordered = [j for j in pending if j.kind == "poison" and j.depends_on is None] + \
        [j for j in pending if j.kind == "poison" and j.depends_on is not None] + \
        [j for j in pending if j.kind == "victim"]
    if not wait:  # submitted at once, nothing waited for
        return [submit(job) for job in ordered]
    if ordered:
        print(f"running {len(ordered)} job(s) on {options.cluster}, {max(1, options.parallel)} at a time, "
              f"{threads} CPU thread(s) each")
    return run_local(plan, ordered, earlier, submit, parallel=options.parallel,
                     in_process=options.cluster == "debug", store=store, results=results, poll_s=POLL_S)
