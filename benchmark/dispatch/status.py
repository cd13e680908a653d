"""Watching a grid: the state of every job from its verified output, its ledger entry and its executor.

A job is `done` when its output exists and verifies; else, if it was submitted (a ledger entry under
<store>/runs/<scale>/), `running` or `queued` while its executor still has it, `blocked` while it waits
on Slurm for a poison job that can never end well (failed, cancelled, timed out), `failed` once it is gone
without output (the last line of its error log says why); else `pending` (never submitted, or finished
but its output is gone or out of date). `unknown`: Slurm did not answer.
"""
from __future__ import annotations

import os
import pickle
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from ..grids import grid_cells
from ..jobs.seeds import mean_text
from ..records import read_record, record_path, results_root
from ..report.paper import paper_values
from . import slurm_jobs
from .ledger import read_ledger
from .plan import Job, Plan, make_plan

ACTIVE = ("running", "queued", "unknown")  # not submitted again: waited for, or depended on
OUTDATED = ("finished earlier, but its output is gone or out of date (other settings, data, poison or probe "
            "protocol): `bench run` runs it again")


@dataclass
class JobStatus:
    state: str  # done, running, queued, blocked, failed, pending, unknown
    job_id: str = "-"
    log: str = "-"
    error: str = ""
    blocked_by: str = ""  # blocked: "<poison job id> <its final state>"

    @property
    def shown(self) -> str:
        return f"blocked: {self.blocked_by}" if self.state == "blocked" else self.state


def last_line(path: str | None) -> str:
    """The last non-empty line of a log file that is not a progress bar."""
    try:
        lines = Path(path).read_text(errors="replace").replace("\r", "\n").splitlines() if path else []
    except OSError:
        return ""
    meaningful = [ln.strip() for ln in lines if ln.strip() and "it/s]" not in ln and "epoch/s]" not in ln]
    return meaningful[-1][:200] if meaningful else ""


def pid_alive(job_id: str) -> bool:
    """A local job's process (its id is the pid) still runs: not gone, not a zombie, and a submitit job
    (a recycled pid of another program does not count)."""
    proc = Path("/proc") / str(job_id)
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and b"submitit" in command
    try:  # no /proc (not Linux)
        os.kill(int(job_id), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def result_of(entry: dict) -> tuple[str, object] | None:
    """submitit's result pickle beside the job's log: ("success", value) or ("error", traceback)."""
    if not entry.get("stdout"):
        return None
    path = Path(entry["stdout"]).with_name(Path(entry["stdout"]).name.replace("_log.out", "_result.pkl"))
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError):
        return None


def job_status(job: Job, plan: Plan, store) -> JobStatus:
    if job.key in plan.done:
        entry = read_ledger(store, plan.scale, job.key) or {}
        return JobStatus("done", entry.get("job_id", "-"), entry.get("stdout") or "-")
    entry = read_ledger(store, plan.scale, job.key)
    if entry is None:
        return JobStatus("pending")
    job_id, log = entry["job_id"], entry.get("stdout") or "-"
    result = result_of(entry)
    if result is None and entry.get("error"):  # recorded by `bench run` when it saw the job fail
        return JobStatus("failed", job_id, log, entry["error"])
    if result is not None and result[0] == "error":
        return JobStatus("failed", job_id, log, str(result[1]).strip().splitlines()[-1][:200])
    if result is not None:  # it finished, but what it made no longer counts
        return JobStatus("pending", job_id, log, OUTDATED)
    if entry["cluster"] == "slurm":
        try:
            info = slurm_jobs.query([job_id]).get(job_id)
        except slurm_jobs.SlurmUnavailable as err:
            return JobStatus("unknown", job_id, log, str(err))
        if info is not None and info.state in slurm_jobs.RUNNING:
            return JobStatus("running", job_id, log)
        if info is not None and not info.final:  # PENDING: waiting for resources or for its poison
            return blocked_status(job, plan, store, job_id, log, info) or JobStatus("queued", job_id, log)
        if info is not None:  # ended without a result: cancelled, timed out past its requeues, killed
            last = last_line(entry.get("stderr"))
            return JobStatus("failed", job_id, log, f"{info.state}: {last}" if last else f"no result: {info.state}")
    elif entry["cluster"] == "local" and pid_alive(job_id):
        return JobStatus("running", job_id, log)
    # gone without a result: killed or timed out
    error = last_line(entry.get("stderr")) or "no result: the job was killed"
    return JobStatus("failed", job_id, log, error)


def blocked_status(job: Job, plan: Plan, store, job_id: str, log: str,
                   info: slurm_jobs.SlurmJob) -> JobStatus | None:
    """A pending Slurm job whose dependency can never be satisfied: Slurm says so (squeue's reason), or the
    poison job it depends on has failed or is blocked itself. None when it may still run."""
    poison = next((j for j in plan.jobs if j.key == job.depends_on), None) if job.depends_on else None
    poison_status = job_status(poison, plan, store) if poison is not None else None
    if poison_status is not None and poison_status.state in ("failed", "blocked"):
        try:
            poison_info = slurm_jobs.query([poison_status.job_id]).get(poison_status.job_id)
        except slurm_jobs.SlurmUnavailable:
            poison_info = None
        ended = poison_info.state if poison_info is not None and poison_info.final else poison_status.state.upper()
        blocker = f"{poison_status.job_id} {ended}"
    elif info.never_runs:  # it depends on an earlier job of that poison, which failed
        blocker = slurm_jobs.NEVER
    else:
        return None
    return JobStatus("blocked", job_id, log, f"the poison job it waits for can never succeed ({blocker}): "
                     "`bench run` cancels this job and submits both again", blocked_by=blocker)


def plan_status(plan: Plan, store) -> dict[str, JobStatus]:
    return {job.key: job_status(job, plan, store) for job in plan.jobs}


def stop_local_job(pid: int, grace_s: float = 3.0) -> None:
    """Stop a local job: SIGINT to its submitit controller, as submitit's own cancel (its jobs treat SIGTERM as
    a pre-emption and carry on); where SIGINT is ignored (a `bench run` started in the background by a
    shell), SIGKILL to the controller's tasks and to it after `grace_s`. Checkpoints make the loss small."""
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while pid_alive(str(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not pid_alive(str(pid)):
        return
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    for child in children + [pid]:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cancel(plan: Plan, store) -> list[tuple[Job, JobStatus]]:
    """Cancel every running, queued or blocked job of the plan (scancel on Slurm, `stop_local_job` locally)."""
    cancelled = []
    for job in plan.jobs:
        status = job_status(job, plan, store)
        if status.state not in ACTIVE + ("blocked",):
            continue
        entry = read_ledger(store, plan.scale, job.key) or {}
        if entry.get("cluster") == "slurm":
            slurm_jobs.scancel([status.job_id])
        elif entry.get("cluster") == "local":
            try:
                stop_local_job(int(status.job_id))
            except (ValueError, ProcessLookupError):
                continue
        cancelled.append((job, status))
    return cancelled


# ---------------------------------------------------------------------------------------------- commands

def cells_command(grid: str, scale: str, results=None) -> int:
    """`bench cells`: a grid's cells with their state and our value beside the paper's, read as the tables read
    them: a record made with other settings, data or poison budget than the code's of now is `out of date`, and
    a cell measured with several seeds shows their mean and spread."""
    from ..report.tables import RecordCache, cell_metric

    results = results_root(results)
    cache, rows = RecordCache(results, scale), []
    for cell in grid_cells(grid, scale):
        m = cache.measure(cell.victim, cell.probe)
        paper = paper_values(cell.grid).get((cell.row, cell.column))
        if m.n:
            state, value = "done", mean_text(m.mean, m.spread, m.n)
        else:
            stale = cell_metric(read_record(record_path(results, scale, cell.victim.key)), cell.probe)
            state, value = ("out of date" if stale is not None else "pending"), "-"
        rows.append([cell.grid, cell.row, cell.column, state, value, "-" if paper is None else f"{paper:.1f}",
                     cell.victim.key[:12]])
    print(tabulate(rows, headers=["grid", "row", "column", "state", "ours", "paper", "victim job"]))
    return 0


def status_command(grid: str, scale: str, *, results=None, store=None, rows: list[str] | None = None,
                   columns: list[str] | None = None) -> int:
    """`bench status`: every cell's state (done / running / queued / blocked / failed / pending) with its job id,
    log and last error; a cell waiting on its poison shows the poison job."""
    plan = make_plan(grid, scale, results=results, store=store, rows=rows, columns=columns)
    status = plan_status(plan, store)
    jobs = {j.key: j for j in plan.jobs}
    table = []
    for cell in plan.cells:
        victim = status.get(cell.victim.key)
        if victim is None:  # its attack is not registered
            table.append([cell.grid, cell.row, cell.column, "skipped", "-", "-", "attack not registered"])
            continue
        shown, what = victim, "victim"
        poison_key = jobs[cell.victim.key].depends_on
        while poison_key and victim.state in ("pending", "queued") and status[poison_key].state != "done":
            shown, what = status[poison_key], "poison"  # the cell waits on its poison: show that job
            poison_key = jobs[poison_key].depends_on
        state = shown.shown if what == "victim" else f"{shown.shown} ({what})"
        table.append([cell.grid, cell.row, cell.column, state, shown.job_id, shown.log, shown.error])
    print(tabulate(table, headers=["grid", "row", "column", "state", "job id", "log", "last error"]))
    counts = Counter(s.state for s in status.values())
    print(f"jobs: {len(plan.jobs)} ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); "
          f"`bench run` resubmits the failed, blocked and pending ones, nothing else")
    return 0


def cancel_command(grid: str, scale: str, *, results=None, store=None, rows: list[str] | None = None,
                   columns: list[str] | None = None) -> int:
    """`bench cancel`: cancel the running, queued and blocked jobs of a grid and say which."""
    plan = make_plan(grid, scale, results=results, store=store, rows=rows, columns=columns)
    cancelled = cancel(plan, store)
    for job, status in cancelled:
        print(f"cancelled {job.name} (job {status.job_id}, was {status.state})")
    print(f"cancelled {len(cancelled)} job(s) of grid {grid} at the {scale} scale")
    return 0
