"""What `bench run` prints while its jobs run: a line per finished or failed job (its cells and result), the
counts (done / running / failed / pending) with the elapsed time and an estimate, and a summary at the end.

Plain lines, so a log file reads as well as a terminal; on a terminal the counts are also kept up to date on
one line rewritten in place between events.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from ..jobs.poison_store import poison_report
from ..records import read_record, record_path, results_root
from .plan import Job, Plan


def clock(seconds: float) -> str:
    """`1:02:03` / `2:03`."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def job_cells(plan: Plan, job: Job) -> list[str]:
    """The cells (`grid row/column`) a job serves: a victim's own, a poison's through its victims."""
    keys = {job.key} | {j.key for j in plan.jobs if j.depends_on == job.key}
    keys |= {j.key for j in plan.jobs if j.depends_on in keys}  # CP-S from CP-C: their victims too
    return [f"{c.grid} {c.row}/{c.column}" for c in plan.cells if c.victim.key in keys]


def job_result(plan: Plan, job: Job, results=None, store=None) -> str:
    """What a finished job made: a victim's accuracy in each of its cells, a poison's checksum and time."""
    if job.kind == "poison":
        report = poison_report(job.attack, store) or {}
        seconds = report.get("seconds_this_run")
        return f"checksum {str(report.get('checksum', '?'))[:12]}" + (f", made in {seconds} s" if seconds is not None else "")
    record = read_record(record_path(results_root(results), plan.scale, job.key)) or {}
    values = []
    for cell in (c for c in plan.cells if c.victim.key == job.key):
        metric = record.get("metrics", {}).get(cell.probe)
        if metric:
            value = metric.get("test_accuracy", metric["probe_best"])
            values.append(f"{cell.grid} {cell.row}/{cell.column}: {value:.1f}%")
    return "; ".join(dict.fromkeys(values)) or "no record"


class Progress:
    """Counts and lines over one run's jobs (`total` of them, `parallel` at a time)."""

    def __init__(self, plan: Plan, total: int, parallel: int = 1, *, results=None, store=None,
                 out: TextIO | None = None) -> None:
        self.plan, self.total, self.parallel = plan, total, max(1, parallel)
        self.results, self.store, self.out = results, store, out or sys.stdout
        self.started_at = time.monotonic()
        self.running: dict[str, float] = {}
        self.done, self.failed, self.durations = 0, 0, []
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._live = False

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed - len(self.running)

    def counts(self) -> str:
        elapsed = time.monotonic() - self.started_at
        text = (f"[{self.done}/{self.total} done, {len(self.running)} running, {self.failed} failed, "
                f"{self.pending} pending; {clock(elapsed)} elapsed")
        if self.durations and (self.pending or self.running):
            left = sum(self.durations) / len(self.durations) * (self.pending + len(self.running)) / self.parallel
            text += f", ~{clock(left)} left"
        return text + "]"

    def _print(self, line: str) -> None:
        if self._live:
            self.out.write("\r\033[K")
            self._live = False
        print(line, file=self.out, flush=True)

    def start(self, job: Job) -> None:
        self.running[job.key] = time.monotonic()
        self.tick()

    def finish(self, job: Job, error: str | None = None, log: str | None = None) -> None:
        """A job ended: `error` is the last line of its error, None when it succeeded; `log`: its error log."""
        started = self.running.pop(job.key, None)
        seconds = time.monotonic() - started if started is not None else 0.0
        if error is None:
            self.done += 1
            if started is not None:  # seen start (on Slurm a short job may end between two looks)
                self.durations.append(seconds)
            what = job_result(self.plan, job, self.results, self.store)
            self._print(f"{self.counts()} done {job.name} ({clock(seconds)}): {what}")
        else:
            self.failed += 1
            cells = job_cells(self.plan, job)
            self._print(f"{self.counts()} FAILED {job.name} ({clock(seconds)}): {error}"
                        + (f" [cells: {', '.join(cells[:4])}{' ...' if len(cells) > 4 else ''}]" if cells else "")
                        + (f" (log: {log})" if log and log != "-" else ""))

    def not_run(self, job: Job, why: str) -> None:
        self.failed += 1
        self._print(f"{self.counts()} not run {job.name}: {why}")

    def tick(self) -> None:
        """On a terminal, rewrite the counts line; elsewhere nothing (a log gets a line per event)."""
        if self.tty:
            self.out.write("\r\033[K" + self.counts())
            self.out.flush()
            self._live = True

    def summary(self) -> str:
        line = (f"run finished in {clock(time.monotonic() - self.started_at)}: {self.done} done, "
                f"{self.failed} failed or not run, {self.pending + len(self.running)} not started, of {self.total}")
        self._print(line)
        return line
