"""Plan -> submit -> job state: a grid's cells become jobs (`plan`), checked before anything is submitted
(`preflight`), run here (`dispatch`, `local`, `jobs`) or on Slurm (`slurm_submit`, `slurm_settings`,
`slurm_jobs`), noted (`ledger`) and reported as they end (`progress`). `status.job_status` owns a job's state,
from what the store, the ledger and the scheduler say of it; the others ask it.

May import report/, jobs/ and the model (benchmark/*.py, data/); only cli/ imports it.
"""
