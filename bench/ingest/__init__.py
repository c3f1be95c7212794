"""bench/ingest: requests/s, rows/s, latency and RSS of the receiver against a ceiling and a
naive baseline, all in one run. `uv run python -m bench.ingest --help`."""
