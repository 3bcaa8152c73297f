"""Our session middleware beside its peers, on the FastAPI SQL tutorial's app: `python -m benchmarks.peers`.

app.py is the tutorial's app with its session handled five ways (PEER=...); run.py serves each with
one uvicorn worker and measures them side by side with wrk. scripts/bench-peers.sh makes the
virtualenv the peers need (.venvs/peers) and runs it.
"""

PEERS = ("decorator", "ours", "fastapi-sqlalchemy", "yield", "advanced-alchemy")  # PEER=..., the table's order
