"""Run the Dynaseal benchmark.

    python -m benchmarks.run             # full run (about two minutes)
    python -m benchmarks.run --quick     # seconds-long smoke run
    python benchmarks/run.py --duration 5 --json out.json

Starts a fast upstream, the gateway, the reference backend and a relaying backend, each
in its own process on free 127.0.0.1 ports, and prints direct-vs-gateway throughput and
latency, streaming timings, /key/create throughput, the gateway's memory with many open
streams, and the paper's relay-vs-Dynaseal comparison.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import `benchmarks` from the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.bench import main

if __name__ == "__main__":
    sys.exit(main())
