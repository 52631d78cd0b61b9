"""S3-backed fetch servers side by side: ``aioaccess fetch-server s3://...`` with each S3 client, one run.

One rclone ``serve s3`` (a Go S3 server, fast enough that the fetch server,
not S3, sets the pace; ``--endpoint moto`` for moto), one corpus of ~6 KB
Communications written by concrete-python (``benchmarks/corpus.py``) in
one bucket, and for each ``--clients`` entry (obstore, the default, first)
``aioaccess fetch-server s3://BUCKET/corpus/`` driven by
``benchmarks.loadgen`` (one process, pre-built frames, 1 id per call) at
each connection count, clients interleaved.  For each run: calls/s, p99,
and the CPU per call of the fetch server and of the S3 server
(``/proc/PID/stat``), so one can tell who was the bottleneck.  A floor row
gives the CPU per GET of obstore's own GET loop on the same objects, from
this process: what any S3-backed server spends at least; a second one the
same two obstore futures per GET on an in-memory store (no HTTP), the cost
of handing each Rust result back to asyncio.

    python -m benchmarks.bench_s3_fetch [--conns 128] [--duration 8] [--clients obstore,aiobotocore]

writes ``benchmarks/results/s3-fetch-<date>.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aioaccess.bench.stats import proc_cpu_seconds
from benchmarks.bench_fetch import REPO, free_port, run_loadgen, stop, wait_port
from benchmarks.bench_s3_store import environment, save_figure, save_report
from benchmarks.corpus import Corpus, ensure_corpus

__all__ = ["main", "start_s3_endpoint"]

logger = logging.getLogger("benchmarks.bench_s3_fetch")

HERE = os.path.dirname(os.path.abspath(__file__))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def rclone_binary() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    return beside if os.path.exists(beside) else "rclone"


def start_s3_endpoint(kind: str, workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    """rclone ``serve s3`` over a folder of ``workdir``, or ``moto_server``; (process, endpoint URL)."""
    port = free_port()
    if kind == "rclone":
        root = os.path.join(workdir, "rclone-root")
        os.makedirs(root, exist_ok=True)
        argv = [rclone_binary(), "serve", "s3", f":local:{root}", "--addr", f"127.0.0.1:{port}", "--auth-key",
                f"{CREDENTIALS['AWS_ACCESS_KEY_ID']},{CREDENTIALS['AWS_SECRET_ACCESS_KEY']}",
                "--config", os.devnull, "--log-level", "ERROR"]
    else:
        argv = ["moto_server", "-H", "127.0.0.1", "-p", str(port)]
    with open(os.path.join(workdir, f"{kind}.log"), "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **CREDENTIALS})
    wait_port(port, proc, 60)
    return proc, f"http://127.0.0.1:{port}"


async def load_bucket(endpoint: str, bucket: str, prefix: str, corpus: Corpus) -> None:
    """Create ``bucket`` and PUT the corpus under ``prefix`` with concrete-python's key layout."""
    from aioaccess.backends.s3 import make_s3_client, prefix_s3_key

    async with make_s3_client(endpoint) as client:
        await client.create_bucket(Bucket=bucket)
        limit = asyncio.Semaphore(32)

        async def put(comm_id: str) -> None:
            async with limit:
                await client.put_object(Bucket=bucket, Key=prefix + prefix_s3_key(comm_id, 4),
                                        Body=corpus.raw(comm_id))

        await asyncio.gather(*(put(i) for i in corpus.ids()))


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of process ``pid`` (``schedstat``: exact, not sampled at clock ticks)."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError):
            pass  # the thread ended
    return out


def main_thread_share(pid: int, before: dict[int, float], after: dict[int, float]) -> float | None:
    """The share of ``pid``'s CPU between two ``thread_cpu`` readings spent by its main thread (the event loop)."""
    used = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    total = sum(used.values())
    return used.get(pid, 0.0) / total if total > 0 else None


async def _get_loop(name: str, get: Callable[[str], Awaitable[Any]], keys: list[str], conns: int,
                    duration: float) -> dict[str, Any]:
    """``conns`` workers calling ``get(key)`` for ``duration`` s; GET/s and this process's CPU per GET."""
    loop = asyncio.get_running_loop()
    done = 0
    stop_at = loop.time() + duration

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while loop.time() < stop_at:
            await get(keys[i % len(keys)])
            done += 1
            i += 7919

    before, threads = proc_cpu_seconds(os.getpid()) or 0.0, thread_cpu(os.getpid())
    await asyncio.gather(*(worker(w) for w in range(conns)))
    cpu = (proc_cpu_seconds(os.getpid()) or 0.0) - before
    share = main_thread_share(os.getpid(), threads, thread_cpu(os.getpid()))
    return {"client": name, "conns": conns, "calls_per_s": done / duration,
            "server_us_per_call": cpu / max(done, 1) * 1e6, "main_thread_share": share}


async def _raw_gets(endpoint: str, bucket: str, keys: list[str], conns: int, duration: float) -> dict[str, Any]:
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(endpoint, max_pool_connections=conns) as client:
        return await _get_loop("obstore GET loop (floor)", partial(client.get_bytes, bucket), keys, conns, duration)


async def _memory_gets(corpus: Corpus, conns: int, duration: float) -> dict[str, Any]:
    import obstore
    from obstore.store import MemoryStore

    store = MemoryStore()
    for comm_id in corpus.ids():
        await obstore.put_async(store, comm_id, corpus.raw(comm_id))

    async def get(key: str) -> bytes:  # get_bytes' two futures, without HTTP
        result = await obstore.get_async(store, key)
        return (await result.bytes_async()).to_bytes()  # type: ignore[no-any-return]

    return await _get_loop("obstore MemoryStore loop (no HTTP)", get, corpus.ids(), conns, duration)


def raw_get_floor(endpoint: str, bucket: str, prefix: str, corpus: Corpus, conns: int,
                  duration: float) -> dict[str, Any]:
    """obstore GETs of the same objects straight from this process: what any S3-backed server costs at least."""
    import uvloop

    from aioaccess.backends.s3 import prefix_s3_key

    keys = [prefix + prefix_s3_key(i, 4) for i in corpus.ids()]
    return uvloop.run(_raw_gets(endpoint, bucket, keys, conns, duration))


def memory_get_floor(corpus: Corpus, conns: int, duration: float) -> dict[str, Any]:
    """The same two obstore futures per GET on an in-memory store: what the Rust <-> asyncio hand-off costs."""
    import uvloop

    return uvloop.run(_memory_gets(corpus, conns, duration))


def plot(report: dict[str, Any], path: str) -> str | None:
    """Calls/s and CPU per call of each client (and the floor), one bar per run; None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    names = list(dict.fromkeys(r["client"] for r in rows))
    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((ax_t, "calls_per_s", "calls/s (GET/s for the floor)"),
                           (ax_c, "server_us_per_call", "CPU µs per call (fetch server / floor process)")):
        for x, name in enumerate(names):
            values = [r[key] for r in rows if r["client"] == name]
            ax.bar([x + (i - (len(values) - 1) / 2) * 0.3 for i in range(len(values))], values, width=0.28)
        ax.set_xticks(range(len(names)), [textwrap.fill(n, 18) for n in names], fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
    load = report["load_average_before_after"][0][0]
    fig.suptitle(f"S3-backed fetch-server on {report['endpoint']}, {report['corpus']['mean_bytes']:.0f}-byte "
                 f"Communications, 1 id per call, one bar per round (load average {load:.0f})")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="obstore,aiobotocore", help="S3 clients (default: obstore,aiobotocore)")
    parser.add_argument("--conns", default="128", help="connection counts, comma-separated (default: 128)")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run (default: 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (default: 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every client (default: 2)")
    parser.add_argument("-n", type=int, default=1000, help="corpus size (default: 1000)")
    parser.add_argument("--size", type=int, default=6000, help="bytes per Communication (default: 6000)")
    parser.add_argument("--endpoint", choices=("rclone", "moto"), default="rclone")
    parser.add_argument("--backend-concurrency", type=int, default=64,
                        help="fetch-server --backend-concurrency (default: 64, fetch-server's own default)")
    parser.add_argument("--out", help="JSON report (default: benchmarks/results/s3-fetch-<date>.json)")
    parser.add_argument("--plot-only", metavar="REPORT.json", help="only draw REPORT.png from an earlier report")
    args = parser.parse_args(argv)
    if args.plot_only:
        with open(args.plot_only) as f:
            print(plot(json.load(f), os.path.splitext(args.plot_only)[0] + ".png"))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    clients = [c for c in args.clients.split(",") if c]
    levels = [int(c) for c in args.conns.split(",")]
    corpus = ensure_corpus(args.n, args.size)
    workdir = tempfile.mkdtemp(prefix="bench-s3-fetch-")
    s3, endpoint = start_s3_endpoint(args.endpoint, workdir)
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    try:
        bucket = f"bench-fetch-{os.getpid()}"
        asyncio.run(load_bucket(endpoint, bucket, "corpus/", corpus))
        for round_ in range(args.rounds):
            for level in levels:
                for client in clients:
                    port = free_port()
                    with open(os.path.join(workdir, f"fetch-{client}.log"), "ab") as log:
                        proc = subprocess.Popen(
                            [sys.executable, "-m", "aioaccess", "-l", "WARNING", "fetch-server",
                             f"s3://{bucket}/corpus/", "--endpoint-url", endpoint, "--s3-client", client,
                             "--port", str(port), "--backend-concurrency", str(args.backend_concurrency)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **CREDENTIALS})
                    try:
                        wait_port(port, proc, 120)
                        s3_before, threads = proc_cpu_seconds(s3.pid) or 0.0, thread_cpu(proc.pid)
                        row = run_loadgen(port, proc.pid, corpus, level, 1, args.duration, args.warmup,
                                          min_reply=args.size // 2)
                        s3_cpu = (proc_cpu_seconds(s3.pid) or 0.0) - s3_before
                        # warm-up included: a share, applied to the measured window's CPU per call
                        row["main_thread_share"] = main_thread_share(proc.pid, threads, thread_cpu(proc.pid))
                    finally:
                        stop(proc)
                    rate = row["calls_per_s"]
                    # the S3 server's CPU is read around the whole loadgen run (warm-up included)
                    row.update(client=client, round=round_, conns=level,
                               server_us_per_call=row["server_cpu"] / rate * 1e6 if rate else None,
                               s3_us_per_call=s3_cpu / (rate * (args.duration + args.warmup) or 1) * 1e6)
                    rows.append(row)
                    print(f"{client:>24} c={level:<4} {row['calls_per_s']:9.1f} calls/s  p99 "
                          f"{row['p99_ms']:7.1f} ms  server {row['server_us_per_call'] or 0:6.1f} us/call"
                          f" ({100 * (row['main_thread_share'] or 0):.0f}% in the event loop's thread)"
                          f"  {args.endpoint} {row['s3_us_per_call']:6.1f} us/call  errors {row['errors']}",
                          flush=True)
            for level in levels:
                for floor in (raw_get_floor(endpoint, bucket, "corpus/", corpus, level, args.duration),
                              memory_get_floor(corpus, level, args.duration / 2)):
                    floor["round"] = round_
                    rows.append(floor)
                    print(f"{floor['client']:>24} c={level:<4} {floor['calls_per_s']:9.1f} GET/s  "
                          f"{floor['server_us_per_call']:6.1f} us of this process's CPU per GET "
                          f"({100 * (floor['main_thread_share'] or 0):.0f}% in the event loop's thread)", flush=True)
    finally:
        stop(s3)
    best = {}
    for client in clients:
        for level in levels:
            mine = [r for r in rows if r["client"] == client and r["conns"] == level]
            best[f"{client}-c{level}"] = min(mine, key=lambda r: r["server_us_per_call"] or 1e9)
    report = {
        "benchmark": "bench_s3_fetch",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "endpoint": args.endpoint,
        "corpus": {"n": corpus.n, "size": corpus.size, "mean_bytes": corpus.mean_size()},
        "ids_per_call": 1,
        "load_average_before_after": [load_before, os.getloadavg()],
        "environment": environment(),
        "rows": rows,
        "best_by_server_cpu": best,
    }
    out = args.out or os.path.join(HERE, "results", f"s3-fetch-{datetime.date.today().isoformat()}.json")
    save_report(report, out)
    png = plot(report, os.path.splitext(out)[0] + ".png")
    print(f"load average before/after: {load_before} / {os.getloadavg()}\nreport: {out}, plot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
