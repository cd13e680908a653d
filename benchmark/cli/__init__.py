"""The `bench` command: its parser and the small commands (`main`), `bench run` (`run`), `bench tables` and
`bench leaderboard` (`report`).

The top room: may import dispatch/, parity/, report/, jobs/ and the model (benchmark/*.py, data/); nothing in
the project imports it.
"""
