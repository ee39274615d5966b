"""Prefect flows and the command line: orchestration only."""

import os

# numpy (imported for the customer filter's fallback and by libraries) starts OpenBLAS with a
# thread per core, which spins on start while the ingest's own threads want both cores (about
# 0.2 s of CPU at every start, measured here). leakwatch does no linear algebra; one thread is
# enough. Set before any flow module imports numpy; a value already set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
