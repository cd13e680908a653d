"""What runs for one planned job (the picklable call an executor runs) and a job once submitted."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from .plan import Job, victim_done


class JobCall(submitit.helpers.Checkpointable):
    """The picklable call of one job. Requeued as is: the training loop resumes from its checkpoint."""

    def __init__(self, job: Job, data_root: str | None, store: str, results: str, threads: int | None = None):
        self.job, self.data_root, self.store, self.results = job, data_root, store, results
        self.threads = threads  # CPU threads: the same count gives the same numbers on every executor

    def __call__(self) -> dict[str, Any]:
        import torch

        from victims.distributed import init_from_env, rank

        from ..jobs import victim as victim_job
        from ..jobs.poison import make_poison
        from ..jobs.poison_store import poison_report
        from ..specs import EvalSpec
        from .slurm_jobs import quiet_sacct_warnings

        if self.threads:
            torch.set_num_threads(self.threads)
        quiet_sacct_warnings()  # where Slurm has no accounting database

        if self.job.kind == "poison":
            poison = make_poison(self.job.attack, data_root=self.data_root, store=self.store)
            report = poison_report(self.job.attack, self.store) or {}
            return {"job": self.job.key, "poison": poison.checksum,
                    "resumed_from_epoch": report.get("resumed_from_epoch", 0)}
        init_from_env()
        spec = self.job.victim
        # made by its poison job already (then only loaded and verified here); made here if it has gone since
        poison = make_poison(spec.poison, data_root=self.data_root, store=self.store) \
            if spec.poison is not None and not spec.poison.is_clean else None
        # planned while its poison was missing: a poison made again bit for bit (seeded CP and random poisons
        # are, on the same hardware and thread count) leaves the record made on it current: keep it
        if poison is not None and victim_done(spec, self.job.probes, self.results, poison.checksum):
            return {"job": self.job.key, "rank": rank(), "record": spec.key, "kept": True}
        record = victim_job.run_victim(spec, EvalSpec(self.job.probes), poison=poison, data_root=self.data_root,
                                       store=self.store, results=self.results)
        return {"job": self.job.key, "rank": rank(), "record": record.get("key")}


@dataclass
class Submission:
    job: Job
    handle: Any  # submitit.Job
    ledger: Path
