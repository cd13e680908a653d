"""Records -> what is published: tables beside the paper's numbers (`tables`, `paper`), the leaderboard,
figures, and the paper's claims checked against the records (`claims`, `claims_report`).

May import jobs/ (whether a record or poison is current, seeds) and the model (benchmark/*.py, data/); dispatch/
and cli/ import it.
"""
