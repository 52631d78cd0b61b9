"""CPU cost of importing aioaccess, beside concrete-python's ``import concrete`` (one run, side by side).

Each import runs in a fresh interpreter, ``--rounds`` times, interleaved; the CPU time (user + system) of the
child is read from ``wait4``, and the bare interpreter's (``python -c pass``) is shown first so it can be
subtracted.  Prints the median and the best round per statement, in seconds.

    python -m benchmarks.bench_import [--rounds 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

__all__ = ["STATEMENTS", "import_cpu"]

#: label -> the statement timed; the defaults first.
STATEMENTS: dict[str, str] = {
    "python -c pass": "pass",
    "import aioaccess": "import aioaccess",
    "aioaccess + FetchCommunicationServiceWrapper": "from aioaccess import FetchCommunicationServiceWrapper",
    "aioaccess.cli.main (the command)": "import aioaccess.cli.main",
    "import concrete (concrete-python)": "import concrete",
    "concrete.util.access (concrete-python)": "import concrete.util.access",
}


def import_cpu(statement: str) -> float:
    """CPU seconds (user + system) of one fresh interpreter running ``statement``."""
    proc = subprocess.Popen([sys.executable, "-c", statement], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    error = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{statement!r} failed: {error}")
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    for _ in range(args.rounds):
        for label, statement in STATEMENTS.items():
            times[label].append(import_cpu(statement))
    load = os.getloadavg()
    print(f"CPU seconds per fresh interpreter, {args.rounds} rounds interleaved; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'':46} {'median':>8} {'best':>8}")
    rows = {}
    for label, values in times.items():
        rows[label] = {"median_s": statistics.median(values), "best_s": min(values)}
        print(f"{label:46} {rows[label]['median_s']:8.3f} {rows[label]['best_s']:8.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "loadavg": load, "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
