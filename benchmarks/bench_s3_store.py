"""Store servers with an S3 target, side by side: aioaccess's store-server vs concrete-python's.

One run, one moto S3 endpoint, one corpus (written by concrete-python, see
``benchmarks/corpus.py``), one bucket per server.  Both servers get the same
pre-built framed-compact ``store`` calls from one closed-loop load generator
(``aioaccess.bench``) at 1, 16 and 64 concurrent connections, levels
interleaved between servers.  For each level we record stores/s, latency,
and the CPU seconds each process used (``/proc/PID/stat`` utime+stime):
the store server's, moto's and the load generator's.

concrete-python's ``s3-store-concrete-server.py`` runs unchanged; boto 2
finds the endpoint in a ``BOTO_CONFIG`` file (``s3_host``/``s3_port``,
plain HTTP, path-style calls).  aioaccess runs ``aioaccess store-server
s3://BUCKET --endpoint-url ... --s3-client CLIENT`` once per S3 client named
in ``--clients`` (obstore, the default, first).  ``--endpoint rclone`` runs
against rclone's ``serve s3`` instead, without concrete-python: rclone takes
only SigV4 signatures, and boto 2 signs with SigV2 (its SigV4 needs an AWS
host name).

    python -m benchmarks.bench_s3_store [--count 2000] [--clients obstore,aiobotocore] [--endpoint moto]

writes ``benchmarks/results/s3-<date>.json`` and prints the table and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.corpus import ensure_corpus
from benchmarks.loadgen import proc_cpu_seconds

__all__ = ["environment", "main", "save_figure", "save_report"]

logger = logging.getLogger("benchmarks.bench_s3_store")

HERE = os.path.dirname(os.path.abspath(__file__))
CONCRETE_SCRIPT = "s3-store-concrete-server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


class Procs:
    """Subprocesses started by this run, stopped (TERM, then KILL) at exit; logs in one folder."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logdir = tempfile.mkdtemp(prefix="bench-s3-store-")

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.logdir, f"{name}.log"), "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        log.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def boto_config(path: str, host: str, port: int, secure: bool) -> None:
    """boto 2 settings that point ``connect_s3()`` at ``host:port``, path-style, without retries.

    moto guesses the service from the Authorization header and mis-reads a
    boto 2 SigV2 signature holding four '/' (a 500, about 1 request in 1000);
    retrying the same request fails the same way, so boto's retries would
    only add seconds of backoff: the store fails at once and is counted.
    """
    with open(path, "w") as f:
        f.write(f"[Credentials]\ns3_host = {host}\ns3_port = {port}\n"
                f"[Boto]\nis_secure = {secure}\nnum_retries = 0\n"
                "[s3]\ncalling_format = boto.s3.connection.OrdinaryCallingFormat\n")


async def measure(port: int, frames: list[tuple[bytes, int]], concurrency: int, count: int,
                  pids: dict[str, int]) -> dict[str, Any]:
    """One closed-loop phase of ``count`` stores; CPU of every process in ``pids`` per store."""
    from aioaccess.bench import run_phase, summarize
    from aioaccess.bench.thrift import FramedCaller

    caller = FramedCaller("127.0.0.1", port, "store")

    async def store(index: int) -> int:
        frame, size = frames[index % len(frames)]
        await caller.call(frame)
        return size

    try:
        await run_phase({"store": store}, concurrency, count=min(concurrency, count))  # connect, warm up
        before = {name: proc_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        result = await run_phase({"store": store}, concurrency, count=count, timeout=60.0)
        after = {name: proc_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
    finally:
        await caller.aclose()
    row = summarize(result, "store", concurrency)[0]
    row["cpu_ms_per_store"] = {name: (after[name] - before[name]) / count * 1e3 for name in pids}
    row["cpu_ms_per_store"]["loadgen"] = row.pop("cpu_s_per_1000_ops")
    row.pop("cpu_s")
    return row


async def bucket_count(endpoint: str, bucket: str) -> int:
    from aioaccess.backends.s3 import make_s3_client

    n = 0
    async with make_s3_client(endpoint) as client:
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            n += len(page.get("Contents", ()))
    return n


async def make_buckets(endpoint: str, names: list[str]) -> None:
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(endpoint) as client:
        for name in names:
            await client.create_bucket(Bucket=name)


def environment() -> dict[str, Any]:
    """Python, CPU count and platform, for a report."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def save_report(report: dict[str, Any], path: str) -> None:
    """Write ``report`` as indented JSON at ``path`` (folders made as needed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


def save_figure(fig: Any, path: str) -> str:
    """Lay out, save (110 dpi) and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(report: dict[str, Any], path: str) -> str | None:
    """Stores/s and server CPU per store against concurrency, one line per server; None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2))
    servers = dict.fromkeys(r["server"] for r in report["rows"])
    for name in servers:
        rows = [r for r in report["rows"] if r["server"] == name]
        xs = sorted({r["concurrency"] for r in rows})  # one point per level: the mean over rounds
        for ax, value in ((ax_t, lambda r: r["ops_per_s"]), (ax_c, lambda r: r["cpu_ms_per_store"]["server"])):
            means = [statistics.fmean(value(r) for r in rows if r["concurrency"] == x) for x in xs]
            ax.plot(xs, means, marker="o", label=name)
    levels = sorted({r["concurrency"] for r in report["rows"]})
    for ax, ylabel in ((ax_t, "stores/s"), (ax_c, "server CPU ms per store")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    extra = f", +{report['latency_ms_each_way']:g} ms each way" if report.get("latency_ms_each_way") else ""
    fig.suptitle(f"S3 store servers on {report['endpoint']}{extra}, {report['corpus']['mean_bytes']:.0f}-byte "
                 "Communications")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds over every level and server (default: 1)")
    parser.add_argument("--count", type=int, default=2000, help="stores per server and level (default: 2000)")
    parser.add_argument("--concurrency", default="1,16,64", help="levels (default: 1,16,64)")
    parser.add_argument("-n", type=int, default=1000, help="corpus size (Communications, default: 1000)")
    parser.add_argument("--size", type=int, default=6000, help="bytes per Communication (default: 6000)")
    parser.add_argument("--clients", default="obstore,aiobotocore",
                        help="aioaccess S3 clients to run, comma-separated (default: obstore,aiobotocore)")
    parser.add_argument("--endpoint", choices=("moto", "rclone", "sink"), default="moto",
                        help="S3 endpoint to start: moto_server, rclone serve s3 (aioaccess only), or "
                        "benchmarks/s3_sink.py (a null S3 that only keeps key names, to find the store servers' own "
                        "ceiling) (default: moto)")
    parser.add_argument("--endpoint-url", help="use this S3 endpoint instead of starting one")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="put a TCP proxy adding this many ms each way between the servers and S3")
    parser.add_argument("--backend-concurrency", type=int, default=64,
                        help="aioaccess store-server --backend-concurrency: most S3 requests in flight (default: 64)")
    parser.add_argument("--out", help="JSON report (default: benchmarks/results/s3-<date>.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    concrete_script = shutil.which(CONCRETE_SCRIPT)
    if concrete_script is None:
        parser.error(f"{CONCRETE_SCRIPT} is not on PATH (pip install concrete==4.18.2)")
    levels = [int(c) for c in args.concurrency.split(",")]
    clients = [c for c in args.clients.split(",") if c]
    with_concrete = args.endpoint != "rclone" or args.endpoint_url is not None
    corpus = ensure_corpus(args.n, args.size)
    from aioaccess.bench.thrift import build_store_frames

    frames = build_store_frames([(i, corpus.raw(i)) for i in corpus.ids()])

    procs = Procs()
    try:
        endpoint = args.endpoint_url
        moto_pid = None
        if endpoint is None:
            s3_port = free_port()
            if args.endpoint == "rclone":
                from benchmarks.bench_s3_fetch import start_s3_endpoint

                s3, endpoint = start_s3_endpoint("rclone", procs.logdir)
                procs.procs.append(s3)
                s3_port = int(endpoint.rsplit(":", 1)[1])
            elif args.endpoint == "moto":
                s3 = procs.start("moto", ["moto_server", "-H", "127.0.0.1", "-p", str(s3_port)])
            else:
                s3 = procs.start("sink", [sys.executable, "-m", "benchmarks.s3_sink", "--port", str(s3_port)])
            wait_port(s3_port, s3, args.endpoint)
            endpoint, moto_pid = f"http://127.0.0.1:{s3_port}", s3.pid
        direct_endpoint = endpoint
        if args.latency_ms:
            proxy_port = free_port()
            upstream = endpoint.split("://", 1)[1].rstrip("/")
            proxy = procs.start("proxy", [sys.executable, "-m", "aioaccess.bench.proxy", upstream,
                                          "--port", str(proxy_port), "--delay-ms", str(args.latency_ms)])
            wait_port(proxy_port, proxy, "latency proxy")
            endpoint = f"http://127.0.0.1:{proxy_port}"
        host_port = endpoint.split("://", 1)[1].rstrip("/")
        s3_host, _, s3_port = host_port.rpartition(":")
        servers: dict[str, tuple[int, int, str]] = {}  # name -> (pid, port, bucket)
        stamp = time.strftime("%H%M%S")
        names = ["concrete-python"] * with_concrete + [f"aioaccess-{c}" for c in clients]
        buckets = {name: f"bench-{name.replace('_', '-')}-{stamp}".lower() for name in names}
        asyncio.run(make_buckets(direct_endpoint, list(buckets.values())))

        if with_concrete:
            cfg = os.path.join(procs.logdir, "boto.cfg")
            secure = endpoint.startswith("https://")
            boto_config(cfg, s3_host, int(s3_port or (443 if secure else 80)), secure)
            port = free_port()
            proc = procs.start("concrete-python", [sys.executable, concrete_script, buckets["concrete-python"],
                                                   "--host", "127.0.0.1", "--port", str(port), "-l", "warning"],
                               env={"BOTO_CONFIG": cfg})
            wait_port(port, proc, "s3-store-concrete-server.py")
            servers["concrete-python"] = (proc.pid, port, buckets["concrete-python"])
        for client in clients:
            name = f"aioaccess-{client}"
            port = free_port()
            proc = procs.start(name, [sys.executable, "-m", "aioaccess", "-l", "WARNING", "store-server", f"s3://{buckets[name]}",
                                      "--endpoint-url", endpoint, "--host", "127.0.0.1", "--port", str(port),
                                      "--backend-concurrency", str(args.backend_concurrency), "--s3-client", client])
            wait_port(port, proc, name)
            servers[name] = (proc.pid, port, buckets[name])

        rows: list[dict[str, Any]] = []
        for round_, level in [(r, level) for r in range(args.rounds) for level in levels]:
            for name, (pid, port, _) in servers.items():
                pids = {"server": pid, **({"s3": moto_pid} if moto_pid else {})}
                row = asyncio.run(measure(port, frames, level, args.count, pids))
                row.update(server=name, round=round_)
                rows.append(row)
                cpu = row["cpu_ms_per_store"]
                print(f"{name:>24} c={level:<3} {row['ops_per_s']:8.1f} stores/s  p99 {row['latency_ms']['p99']:7.1f}"
                      f" ms  server CPU {cpu['server']:.3f} ms/store  S3 endpoint {cpu.get('s3', 0):.3f}  "
                      f"errors {row['errors'] or 0}", flush=True)
        stored = {name: asyncio.run(bucket_count(direct_endpoint, bucket))
                  for name, (_, _, bucket) in servers.items()}
    finally:
        procs.stop_all()

    def pick(name: str, level: int, round_: int) -> dict[str, Any]:
        return next(r for r in rows if r["server"] == name and r["concurrency"] == level and r["round"] == round_)

    def ratio(name: str, level: int, round_: int, key: str) -> float:
        mine, theirs = pick(name, level, round_), pick("concrete-python", level, round_)
        if key == "cpu":
            return float(mine["cpu_ms_per_store"]["server"] / max(theirs["cpu_ms_per_store"]["server"], 1e-9))
        return float(mine["ops_per_s"] / max(theirs["ops_per_s"], 1e-9))

    # Each round's ratio is of two servers measured back to back; the worst round is the one quoted.
    ratios: dict[str, Any] = {}
    for client in clients if with_concrete else ():
        name = f"aioaccess-{client}"
        ratios[name] = {}
        for level in dict.fromkeys(levels):
            cpu = [ratio(name, level, r, "cpu") for r in range(args.rounds)]
            rate = [ratio(name, level, r, "rate") for r in range(args.rounds)]
            ratios[name][f"c{level}"] = {"server_cpu_per_store_vs_concrete": max(cpu),
                                         "stores_per_s_vs_concrete": min(rate),
                                         "server_cpu_per_store_vs_concrete_each_round": cpu,
                                         "stores_per_s_vs_concrete_each_round": rate}
    report = {
        "benchmark": "bench_s3_store",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "endpoint": f"{args.endpoint} (local)" if args.endpoint_url is None else args.endpoint_url,
        "latency_ms_each_way": args.latency_ms,
        "corpus": {"n": corpus.n, "size": corpus.size, "mean_bytes": corpus.mean_size()},
        "count_per_level": args.count,
        "rounds": args.rounds,
        "aioaccess_backend_concurrency": args.backend_concurrency,
        "environment": environment(),
        "objects_in_bucket": stored,
        "rows": rows,
        "ratios": ratios,
    }
    out = args.out or os.path.join(HERE, "results", f"s3-{datetime.date.today().isoformat()}.json")
    save_report(report, out)
    png = plot(report, os.path.splitext(out)[0] + ".png")
    print(f"\nobjects in each bucket: {stored}")
    for name, per_level in ratios.items():
        for level, r in per_level.items():
            each = ", ".join(f"{x:.2f}" for x in r["server_cpu_per_store_vs_concrete_each_round"])
            print(f"{name} {level}: server CPU/store at most {r['server_cpu_per_store_vs_concrete']:.2f}x "
                  f"concrete-python's (each round: {each}), stores/s at least {r['stores_per_s_vs_concrete']:.2f}x")
    print(f"report: {out}" + (f", plot: {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
