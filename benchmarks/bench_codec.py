"""Compact-protocol codecs side by side: aioaccess's C codec vs concrete-python vs thriftpy2.

One process, one run.  Two annotated Communications from ``benchmarks/synthetic.py``
(about 6 KB and 100 KB encoded).  For each we time:

* decode: ``aioaccess.codec._speedups.decode(buf, Communication)`` vs
  concrete-python's ``read_communication_from_buffer(buf, add_references=False)``
  (Apache Thrift's accelerated C codec) vs thriftpy2's pure-Python
  ``TCompactProtocol`` (``thriftpy2.utils.deserialize``);
* encode: ``_speedups.encode(comm)`` vs ``write_communication_to_buffer`` vs
  ``thriftpy2.utils.serialize``;
* extras for aioaccess only: ``skip`` (validation), ``validate`` (with the schema), ``read_string_field``
  (Communication.id) and ``to_tjson``, the latter next to Apache's pure-Python
  ``TJSONProtocol`` writer, which is what concrete-python's HTTP service uses.

That is the "objects discarded" regime: each decoded object is dropped at once, so the
collector never finds much to traverse.  The "objects kept" regime (``codec_kept``) decodes
2,000 Communications and keeps them all, GC on, with and without ``add_references``, and
times ``client.fetch`` of 100 ids x 20 calls, results kept, against concrete-python's client
on the same server (client CPU per Communication).  ``--baseline SO`` adds a ``_speedups``
built from another commit (say ``main``) to the decode rows of both regimes.

Implementations are interleaved round by round and the best round is kept.
Each sample records both process CPU time (``time.process_time``) and wall
time; throughput and ratios use CPU time by default (``--clock cpu``), which
stays meaningful on a shared, loaded machine, while the wall-clock figures
are kept in the JSON report too.  Everything runs twice: with Python's cyclic GC
enabled (the default, what applications see; object-heavy decoders pay for
collections) and with the GC disabled around the timed loop (codec CPU only).

    python -m benchmarks.bench_codec [--rounds 7] [--sample-seconds 0.1] [--clock cpu|wall] [--out PATH]
        [--kept-n 2000] [--kept-rounds 3] [--no-kept] [--no-fetch] [--baseline PATH/_speedups.so]

writes ``benchmarks/results/codec-<date>.json`` and prints tables and ratios.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from concrete.util import read_communication_from_buffer, write_communication_to_buffer  # noqa: E402
from thrift.protocol.TJSONProtocol import TJSONProtocol  # noqa: E402
from thrift.transport.TTransport import TMemoryBuffer  # noqa: E402
from thriftpy2.protocol import TCompactProtocolFactory  # noqa: E402
from thriftpy2.utils import deserialize, serialize  # noqa: E402

from aioaccess.codec import _speedups as S  # noqa: E402
from aioaccess.schema import Communication  # noqa: E402
from benchmarks.synthetic import make_communication  # noqa: E402

from . import codec_kept  # noqa: E402

__all__ = ["main"]

SIZES = {"6KB": 6000, "100KB": 100_000}


def _per_call(fn: Callable[[], Any], n: int, gc_enabled: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call over n calls."""
    gc.collect()
    if not gc_enabled:
        gc.disable()
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            fn()
        c1, t1 = time.process_time(), time.perf_counter()
        return (c1 - c0) / n, (t1 - t0) / n
    finally:
        gc.enable()


def _calibrate(fn: Callable[[], Any], sample_seconds: float) -> int:
    n, elapsed = 1, 0.0
    while True:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        elapsed = time.process_time() - t0
        if elapsed >= sample_seconds / 4 or n >= 1 << 20:
            break
        n *= 4
    return max(1, int(n * sample_seconds / max(elapsed, 1e-9)))


CLOCK = "cpu"


def measure(cases: dict[str, Callable[[], Any]], rounds: int, sample_seconds: float, gc_enabled: bool) -> dict:
    """Interleave the cases round by round; best and median seconds per call, CPU and wall."""
    iters = {name: _calibrate(fn, sample_seconds) for name, fn in cases.items()}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_per_call(fn, iters[name], gc_enabled))
    out = {}
    for name, s in samples.items():
        cpu, wall = [c for c, _ in s], [w for _, w in s]
        out[name] = {
            "clock": CLOCK,
            "best_s": min(cpu) if CLOCK == "cpu" else min(wall),
            "cpu_best_s": min(cpu),
            "cpu_median_s": statistics.median(cpu),
            "wall_best_s": min(wall),
            "wall_median_s": statistics.median(wall),
            "iterations": iters[name],
            "rounds": len(s),
        }
    return out


def _fmt_rate(seconds: float, nbytes: int) -> str:
    return f"{1 / seconds:>10,.0f} ops/s {nbytes / seconds / 1e6:>8.1f} MB/s {seconds * 1e6:>10.1f} us"


def run(rounds: int, sample_seconds: float, baseline: Any = None) -> dict:
    report: dict[str, Any] = {
        "benchmark": "codec",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "rounds": rounds,
        "sample_seconds": sample_seconds,
        "clock": CLOCK,
        "method": "interleaved rounds, best round kept; throughput = 1/best seconds per call (of --clock)",
        "sizes": {},
    }
    factory = TCompactProtocolFactory()
    for label, size in SIZES.items():
        comm = make_communication(f"bench-codec-{label}", size=size, seed=7)
        buf = S.encode(comm)
        acomm = read_communication_from_buffer(buf, add_references=False)
        checks = {
            "encode_identical_to_concrete_python": write_communication_to_buffer(acomm) == buf,
            "decode_equals_thriftpy2": S.decode(buf, Communication)[0] == deserialize(Communication(), buf, factory),
            "thriftpy2_encode_identical": serialize(comm, factory) == buf,
        }
        print(f"\n== {label} Communication: {len(buf):,} bytes compact ({CLOCK} time) ==")
        print("   checks: " + ", ".join(f"{k}={v}" for k, v in checks.items()))
        entry: dict[str, Any] = {"bytes": len(buf), "checks": checks}

        ops = {
            "decode": {
                "aioaccess": lambda buf=buf: S.decode(buf, Communication),
                "concrete-python": lambda buf=buf: read_communication_from_buffer(buf, add_references=False),
                "thriftpy2": lambda buf=buf: deserialize(Communication(), buf, factory),
                **({"baseline": lambda buf=buf: baseline.decode(buf, Communication)} if baseline else {}),
            },
            "encode": {
                "aioaccess": lambda comm=comm: S.encode(comm),
                "concrete-python": lambda acomm=acomm: write_communication_to_buffer(acomm),
                "thriftpy2": lambda comm=comm: serialize(comm, factory),
            },
        }

        def apache_tjson(acomm=acomm) -> bytes:
            out = TMemoryBuffer()
            acomm.write(TJSONProtocol(out))
            return out.getvalue()

        extras = {
            "skip": lambda buf=buf: S.skip(buf),
            "validate": lambda buf=buf: S.validate(buf, Communication),
            "read_string_field": lambda buf=buf: S.read_string_field(buf, 1),
            "to_tjson": lambda buf=buf: S.to_tjson(buf, Communication),
            "apache_tjson_write": apache_tjson,
        }
        for mode, gc_enabled in (("gc_enabled", True), ("gc_disabled", False)):
            entry[mode] = {}
            print(f"  -- cyclic GC {'enabled' if gc_enabled else 'disabled'} --")
            for op, cases in ops.items():
                res = measure(cases, rounds, sample_seconds, gc_enabled)
                ours = res["aioaccess"]["best_s"]
                for name in res:
                    r = res[name]
                    r["ops_per_s"] = 1 / r["best_s"]
                    r["mb_per_s"] = len(buf) / r["best_s"] / 1e6
                    r["speedup_of_aioaccess"] = r["best_s"] / ours
                    ratio = r["speedup_of_aioaccess"]
                    print(f"  {op:6} {name:16}{_fmt_rate(r['best_s'], len(buf))}   aioaccess is x{ratio:.2f}")
                entry[mode][op] = res
            res = measure(extras, rounds, sample_seconds, gc_enabled)
            for name, r in res.items():
                r["ops_per_s"] = 1 / r["best_s"]
                if name == "read_string_field":  # reads only Communication.id: MB/s is meaningless
                    print(f"  extra  {name:18}{1 / r['best_s']:>10,.0f} ops/s {'':>13} {r['best_s'] * 1e6:>10.2f} us")
                    continue
                r["mb_per_s"] = len(buf) / r["best_s"] / 1e6
                print(f"  extra  {name:18}{_fmt_rate(r['best_s'], len(buf))}")
            tj = res["to_tjson"]
            tj["speedup_vs_apache_tjson_write"] = res["apache_tjson_write"]["best_s"] / tj["best_s"]
            entry[mode]["extras"] = res
        report["sizes"][label] = entry

    report["loadavg_end"] = os.getloadavg()
    summary = {}
    print(f"\n== summary: aioaccess C codec speed-up (best rounds, {CLOCK} time) ==")
    for mode in ("gc_enabled", "gc_disabled"):
        for label in SIZES:
            for op in ("decode", "encode"):
                res = report["sizes"][label][mode][op]
                key = f"{mode}/{label}/{op}"
                summary[key] = {
                    "vs_concrete_python": round(res["concrete-python"]["speedup_of_aioaccess"], 2),
                    "vs_thriftpy2": round(res["thriftpy2"]["speedup_of_aioaccess"], 2),
                }
                print(
                    f"  {mode:11} {label:5} {op}: x{summary[key]['vs_concrete_python']:5.2f} vs concrete-python,"
                    f" x{summary[key]['vs_thriftpy2']:6.1f} vs thriftpy2"
                )
    report["summary"] = summary
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case (default 7)")
    parser.add_argument("--sample-seconds", type=float, default=0.1, help="target CPU duration of one sample")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="clock for throughput and ratios")
    parser.add_argument("--out", help="JSON report (default: benchmarks/results/codec-<date>.json)")
    parser.add_argument("--kept-n", type=int, default=2000, help="Communications kept per round (default 2,000)")
    parser.add_argument("--kept-rounds", type=int, default=3, help="interleaved rounds of the kept regime")
    parser.add_argument("--no-kept", action="store_true", help="skip the objects-kept regime")
    parser.add_argument("--no-fetch", action="store_true", help="skip client.fetch with objects kept")
    parser.add_argument("--baseline", help="a _speedups .so built from another commit, measured beside")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = args.clock
    baseline = codec_kept.load_baseline(args.baseline) if args.baseline else None
    report = run(args.rounds, args.sample_seconds, baseline)
    if not args.no_kept:
        bufs = codec_kept.make_buffers(args.kept_n)
        report["kept"] = {"communications": len(bufs), "mean_bytes": sum(map(len, bufs)) / len(bufs),
                          "loadavg_start": os.getloadavg()}
        report["kept"]["decode"] = res = codec_kept.decode_kept(bufs, args.kept_rounds, baseline)
        codec_kept.print_table(f"objects kept: read_communication_from_buffer x {len(bufs):,}, GC on", res)
        if not args.no_fetch:
            report["kept"]["fetch"] = res = codec_kept.fetch_kept(bufs, args.kept_rounds)
            codec_kept.print_table("objects kept: client.fetch of 100 ids x 20 calls, client CPU", res)
        report["kept"]["loadavg_end"] = os.getloadavg()
    out = args.out or os.path.join(HERE, "results", f"codec-{datetime.date.today().isoformat()}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
