"""Slurm job states read from the controller (squeue), with sacct only as a fallback where accounting exists.

submitit reads job states from `sacct` only; on a cluster without an accounting database that fails, the
state stays UNKNOWN, and a job that ends without writing its result (scancel, time-out past its requeues,
a node failure) looks unfinished forever. `bench` therefore asks squeue, which lists every job the
controller still holds, finished ones included for MinJobAge (300 s by default), and the reason a pending
job waits (`DependencyNeverSatisfied` once the job it depends on can never end well).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

# states after which Slurm does nothing more with a job (squeue's long names)
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "REVOKED", "SPECIAL_EXIT")
# PREEMPTED is passed through on the way to a requeue (as submitit counts it); a job that stays preempted
# leaves squeue after MinJobAge and then counts as ended without a result
RUNNING = ("RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
           "SIGNALING", "STAGE_OUT", "STOPPED", "SUSPENDED", "PREEMPTED")
NEVER = "DependencyNeverSatisfied"  # squeue's reason for a job whose dependency can never be satisfied
TIMEOUT_S = 30


class SlurmUnavailable(RuntimeError):
    """The controller did not answer (or answered with an error other than 'unknown job')."""


@dataclass(frozen=True)
class SlurmJob:
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, ... (first word: "CANCELLED by 0" -> CANCELLED)
    reason: str = ""  # why a pending job waits (squeue %r), e.g. Dependency, DependencyNeverSatisfied

    @property
    def final(self) -> bool:
        return self.state in FINAL

    @property
    def never_runs(self) -> bool:
        """Pending on a dependency that can never be satisfied (its job failed, was cancelled, timed out)."""
        return self.state == "PENDING" and self.reason == NEVER


def _parse(text: str) -> dict[str, SlurmJob]:
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            state = parts[1].split()[0].upper() if parts[1].split() else "UNKNOWN"
            jobs[parts[0]] = SlurmJob(state, parts[2].strip() if len(parts) > 2 else "")
    return jobs


def _squeue(ids: list[str]) -> dict[str, SlurmJob]:
    """Every job of `ids` the controller still holds (array tasks one by one, finished jobs too)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"squeue gave no answer within {TIMEOUT_S} s") from None
    if out.returncode != 0:
        if "invalid job id" in out.stderr.lower():  # none of them is known (any more)
            return {}
        lines = (out.stderr or out.stdout).strip().splitlines()
        raise SlurmUnavailable(f"squeue failed: {lines[-1] if lines else f'exit {out.returncode}'}")
    return _parse(out.stdout)


def _sacct(ids: list[str]) -> dict[str, SlurmJob]:
    """Final states from accounting, for jobs the controller no longer holds; {} where there is none."""
    if not shutil.which("sacct"):
        return {}
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(ids), "-o", "JobID,State"],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {}
    return _parse(out.stdout) if out.returncode == 0 else {}


def query(ids: list[str]) -> dict[str, SlurmJob]:
    """The state of each job id (`12` or an array task `12_3`) that Slurm still knows; ids it does not know
    (never submitted here, or finished long ago without accounting) are absent. Raises SlurmUnavailable."""
    ids = sorted({str(i) for i in ids if i and i != "-"})
    if not ids or not shutil.which("squeue"):
        return {}
    found = {}
    for start in range(0, len(ids), 200):  # keep the command line short on large grids
        found.update(_squeue(ids[start:start + 200]))
    missing = [i for i in ids if i not in found]
    if missing:
        found.update({k: v for k, v in _sacct(missing).items() if k in missing})
    return found


def scancel(ids: list[str]) -> None:
    ids = [i for i in ids if i and i != "-"]
    if ids:
        subprocess.run(["scancel", *ids], check=False, capture_output=True, timeout=TIMEOUT_S)


class _NoSacctWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


def quiet_sacct_warnings() -> None:
    """Drop submitit's "Bypassing sacct error" warnings (logged on every poll where there is no accounting
    database): bench reads job states from squeue, so they say nothing useful."""
    logger = logging.getLogger("submitit")
    if not any(isinstance(f, _NoSacctWarnings) for f in logger.filters):
        logger.addFilter(_NoSacctWarnings())
