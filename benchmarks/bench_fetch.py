"""The fetch benchmark: every server side by side, driven by the same load generator, in one run.

``python -m benchmarks.bench_fetch`` (or ``--quick`` for a 1-2 minute pass)
generates (or reuses) the corpora, then for each server in turn starts it on the
same data, checks that it serves the corpus's bytes (through concrete-python's
own client), and runs ``benchmarks.loadgen`` in a separate process at each
connection count.  Servers run one at a time, so each has one core and the load
generator the other.  Results go to ``benchmarks/results/fetch-<date>.json``
and ``.png``; the table printed at the end gives ratios against concrete-python
(same kind of source) and against the ceiling (same connections and ids per call).

Servers (``--servers`` picks a subset):

- ``ceiling``: ``benchmarks.ceiling``, a fixed reply per frame
- ``cp-dir``, ``cp-zip``, ``cp-mem``: concrete-python's ``fetch-server.py`` on the directory, zip, tar.gz
- ``tp2-aio``, ``apache-nonblocking``, ``apache-procpool``: the stock servers a user would otherwise pick
  (thriftpy2's asyncio server; Apache Thrift's TNonblockingServer and TProcessPoolServer with the
  accelerated compact protocol), on the directory: see ``benchmarks.peers``
- ``aio-dir``, ``aio-zip``, ``aio-mem``: ``python -m aioaccess fetch-server`` on the same
- ``aio-redis``: a Redis hash in a redis-server started here (limit: ``redis-benchmark -t get``)
- ``aio-redis-py``: the same through redis-py's pool (``--redis-client redis-py``), the path before the pipe
- ``aio-s3``: a bucket in a moto_server started here (limit: aiobotocore GETs straight at moto)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .corpus import Corpus, ensure_corpus
from .loadgen import raise_nofile
from .peers import PEERS, fastbinary_compiled
from .proctree import alive

__all__ = ["main"]

logger = logging.getLogger("benchmarks.bench_fetch")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
BIN = os.path.dirname(sys.executable)
ALL_SERVERS = ["ceiling", "cp-dir", "cp-zip", "cp-mem", *PEERS, "aio-dir", "aio-zip", "aio-mem", "aio-redis",
               "aio-redis-py", "aio-s3"]
QUICK_SERVERS = ["ceiling", "cp-dir", "cp-mem", *PEERS, "aio-dir", "aio-zip", "aio-mem", "aio-redis", "aio-redis-py",
                 "aio-s3"]
REDIS_KEY = "bench-comms"
S3_BUCKET = "bench-comms"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- backing services (Redis, moto S3), started once per run -----------------
@dataclass
class Services:
    workdir: str
    redis_port: int | None = None
    s3_port: int | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    loaded: set[tuple[str, str]] = field(default_factory=set)

    def redis(self) -> int:
        if self.redis_port is None:
            port = free_port()
            proc = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(proc)
            wait_port(port, proc, 10)
            self.redis_port = port
        return self.redis_port

    def s3(self) -> int:
        if self.s3_port is None:
            port = free_port()
            log = open(os.path.join(self.workdir, "moto.log"), "wb")  # noqa: SIM115 - lives as long as the run
            proc = subprocess.Popen([shutil.which("moto_server") or "moto_server", "-p", str(port)],
                                    stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV})
            self.procs.append(proc)
            wait_port(port, proc, 30)
            self.s3_port = port
        return self.s3_port

    def load_redis(self, corpus: Corpus) -> str:
        import redis

        key = f"{REDIS_KEY}-{os.path.basename(corpus.root)}"
        if ("redis", key) not in self.loaded:
            r = redis.Redis(port=self.redis(), socket_timeout=60)
            r.delete(key)
            pipe = r.pipeline(transaction=False)
            for i, comm_id in enumerate(corpus.ids()):
                pipe.hset(key, comm_id, corpus.raw(comm_id))
                if i % 200 == 199:
                    pipe.execute()
            pipe.execute()
            r.close()
            self.loaded.add(("redis", key))
        return key

    def load_s3(self, corpus: Corpus) -> str:
        import boto3

        from aioaccess.backends.s3 import prefix_s3_key

        bucket = f"{S3_BUCKET}-{os.path.basename(corpus.root)}".lower().replace("_", "-")[:63]
        if ("s3", bucket) not in self.loaded:
            s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3()}", **_boto_credentials())
            s3.create_bucket(Bucket=bucket)
            for comm_id in corpus.ids():
                s3.put_object(Bucket=bucket, Key=prefix_s3_key(comm_id, 4), Body=corpus.raw(comm_id))
            self.loaded.add(("s3", bucket))
        return bucket

    def close(self) -> None:
        for proc in self.procs:
            stop(proc)


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


# -- servers ------------------------------------------------------------------
def server_command(name: str, corpus: Corpus, k: int, port: int,
                   services: Services) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment that start server ``name`` on ``corpus`` at ``port``."""
    py = sys.executable
    cp = [py, os.path.join(BIN, "fetch-server.py"), "--host", "127.0.0.1", "-p", str(port), "-l", "warning"]
    aio = [py, "-m", "aioaccess", "fetch-server", "--host", "127.0.0.1", "--port", str(port), "-l", "WARNING",
           "--max-connections", "10000"]
    if name == "ceiling":
        return [py, "-m", "benchmarks.ceiling", "--port", str(port), "--corpus-dir", corpus.directory,
                "-k", str(k)], {}
    if name in PEERS:
        return [py, "-m", "benchmarks.peers", name, "--port", str(port), "--corpus-dir", corpus.directory], {}
    source = {"dir": corpus.directory, "zip": corpus.zip_path, "mem": corpus.tgz_path}
    kind = name.split("-", 1)[1]
    if name.startswith("cp-"):
        return [*cp, source[kind]], {}
    if kind in source:
        return [*aio, source[kind]], {}
    if kind in ("redis", "redis-py"):
        key = services.load_redis(corpus)
        client = ["--redis-client", "redis-py"] if kind == "redis-py" else []
        return [*aio, f"redis://127.0.0.1:{services.redis()}/0", "--redis-key", key, *client], {}
    if kind == "s3":
        bucket = services.load_s3(corpus)
        return [*aio, f"s3://{bucket}", "--endpoint-url", f"http://127.0.0.1:{services.s3()}"], S3_ENV
    raise ValueError(f"unknown server {name!r}")


def check_server(port: int, corpus: Corpus, k: int) -> None:
    """Fetch ``k`` ids with concrete-python's client; the bytes must be the corpus's."""
    from concrete.access.ttypes import FetchRequest
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    ids = corpus.ids()[:k]
    with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
        result = client.fetch(FetchRequest(communicationIds=ids))
    got = [c.id for c in result.communications]
    if got != ids:
        raise RuntimeError(f"server returned ids {got[:3]}... for {ids[:3]}...")
    for comm in result.communications[:3]:
        if write_communication_to_buffer(comm) != corpus.raw(comm.id):
            raise RuntimeError(f"server's bytes for {comm.id} differ from the corpus")


@contextlib.contextmanager
def running(name: str, corpus: Corpus, k: int, services: Services, workdir: str,
            env_extra: dict[str, str]) -> Iterator[tuple[int, int]]:
    port = free_port()
    argv, env = server_command(name, corpus, k, port, services)
    log_path = os.path.join(workdir, f"{name}-k{k}.log")
    with open(log_path, "wb") as log:
        # A session of its own: the server's worker processes, if any, are stopped with it.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **env, **env_extra}, start_new_session=True)
    try:
        wait_port(port, proc, 300)
        if name != "ceiling":
            check_server(port, corpus, min(k, 3))
        yield port, proc.pid
    finally:
        stop(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode not in (0, -signal.SIGTERM):
            logger.warning("%s exited with %s; see %s", name, proc.returncode, log_path)


def run_loadgen(port: int, pid: int, corpus: Corpus, conns: int, k: int, duration: float, warmup: float,
                min_reply: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--port", str(port), "--ids-file",
            os.path.join(corpus.root, "ids.txt"), "-c", str(conns), "-k", str(k), "-d", str(duration),
            "-w", str(warmup), "--server-pid", str(pid), "--min-reply", str(min_reply)]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=duration + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout)


def start_py_spy(pid: int, out: str, seconds: float) -> subprocess.Popen[bytes]:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    return subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(int(seconds + 0.999)), "-r", "250",
                             "-f", "raw", "-o", out, "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def summarize_py_spy(path: str, top: int = 12) -> str:
    """Self and inclusive shares of the functions in a py-spy raw (collapsed stacks) file."""
    from collections import Counter

    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            n = int(count)
            total += n
            frames = [fr.split(" (")[0] + " " + fr.rsplit("/", 1)[-1].rstrip(")") for fr in stack.split(";")]
            own[frames[-1]] += n
            for fr in set(frames):
                incl[fr] += n
    lines = [f"  {total} samples; self time:"]
    lines += [f"    {100 * n / total:5.1f}%  {fr}" for fr, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {fr}" for fr, n in incl.most_common(top + 8)]
    return "\n".join(lines)


# -- reference limits of the remote backends ------------------------------------
def redis_limit(services: Services, size: int, conns: int, requests: int) -> dict[str, Any]:
    port = services.redis()
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get", "-d", str(size), "-c", str(conns),
                          "-n", str(requests), "--csv"], capture_output=True, text=True, timeout=300)
    for line in out.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0].startswith("GET"):
            row: dict[str, Any] = {"server": "redis-benchmark GET", "conns": conns, "calls_per_s": float(cells[1]),
                                   "value_bytes": size}
            if len(cells) >= 8:
                row["p50_ms"], row["p99_ms"] = float(cells[4]), float(cells[6])
            return row
    raise RuntimeError(f"cannot parse redis-benchmark output: {out.stdout[-500:]} {out.stderr[-500:]}")


async def _s3_get_rate(port: int, bucket: str, keys: list[str], conns: int, duration: float) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    config = AioConfig(max_pool_connections=conns)
    latencies: list[float] = []
    async with session.create_client("s3", endpoint_url=f"http://127.0.0.1:{port}", config=config,
                                     **_boto_credentials()) as s3:
        stop_at = time.perf_counter() + duration

        async def worker(i: int) -> None:
            while (now := time.perf_counter()) < stop_at:
                response = await s3.get_object(Bucket=bucket, Key=keys[(i * 7919 + len(latencies)) % len(keys)])
                async with response["Body"] as body:
                    await body.read()
                latencies.append(time.perf_counter() - now)

        await asyncio.gather(*(worker(i) for i in range(conns)))
    latencies.sort()
    return {"server": "moto S3 GET (aiobotocore)", "conns": conns, "calls_per_s": len(latencies) / duration,
            "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else None,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else None}


def s3_limit(services: Services, corpus: Corpus, conns: int, duration: float) -> dict[str, Any]:
    from aioaccess.backends.s3 import prefix_s3_key

    bucket = services.load_s3(corpus)
    keys = [prefix_s3_key(i, 4) for i in corpus.ids()]
    return asyncio.run(_s3_get_rate(services.s3(), bucket, keys, conns, duration))


# -- table and plot -------------------------------------------------------------
def _ref(rows: list[dict[str, Any]], server: str, row: dict[str, Any]) -> dict[str, Any] | None:
    for r in rows:
        if r["server"] == server and r["conns"] == row["conns"] and r["ids_per_call"] == row["ids_per_call"]:
            return r
    return None


def _cp_for(server: str) -> str:
    kind = server.split("-", 1)[1]
    return f"cp-{kind}" if kind in ("dir", "zip", "mem") else "cp-dir"


def add_ratios(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        ceiling = _ref(rows, "ceiling", row)
        row["vs_ceiling"] = row["calls_per_s"] / ceiling["calls_per_s"] if ceiling and ceiling["calls_per_s"] else None
        # The same ratio in server CPU per call: what share of the ceiling's rate this server would reach
        # on a core of its own (steadier than calls/s on a machine shared with other work).
        mine, theirs = row.get("server_us_per_call"), ceiling.get("server_us_per_call") if ceiling else None
        row["cpu_vs_ceiling"] = theirs / mine if mine and theirs else None
        cp = _ref(rows, _cp_for(row["server"]), row) if row["server"] not in ("ceiling", "cp-dir", "cp-zip",
                                                                              "cp-mem") else None
        row["vs_cp"] = row["calls_per_s"] / cp["calls_per_s"] if cp and cp["calls_per_s"] else None


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'server':<18} {'k':>2} {'conns':>5} {'calls/s':>9} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'max ms':>7} {'err':>4} {'refused':>7} {'dropped':>7} {'stalled':>7} {'answered':>8} "
            f"{'srv cpu':>7} {'us/call':>7} {'lg cpu':>6} "
            f"{'x cp':>6} {'% ceil':>6} {'%c cpu':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        def f(v: Any, spec: str) -> str:
            return format(v, spec) if isinstance(v, int | float) else "-"

        lines.append(
            f"{r['server']:<18} {r['ids_per_call']:>2} {r['conns']:>5} {f(r.get('calls_per_s'), '9.0f')} "
            f"{f(r.get('mb_per_s'), '7.1f')} {f(r.get('p50_ms'), '7.2f')} {f(r.get('p99_ms'), '7.2f')} "
            f"{f(r.get('max_ms'), '7.1f')} {f(r.get('errors'), '4d')} {f(r.get('refused'), '7d')} "
            f"{f(r.get('dropped'), '7d')} {f(r.get('timed_out'), '7d')} {f(r.get('answered_conns'), '8d')} "
            f"{f(r.get('server_cpu'), '7.2f')} {f(r.get('server_us_per_call'), '7.1f')} "
            f"{f(r.get('loadgen_cpu'), '6.2f')} "
            f"{f(r.get('vs_cp'), '6.1f')} "
            f"{f(r['vs_ceiling'] * 100 if r.get('vs_ceiling') is not None else None, '6.0f')} "
            f"{f(r['cpu_vs_ceiling'] * 100 if r.get('cpu_vs_ceiling') is not None else None, '6.0f')}")
    return "\n".join(lines)


def format_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| server | ids/call | conns | calls/s | MB/s | p50 ms | p99 ms | errors / refused / dropped / stalled "
             "| conns answered | server CPU us/call | x concrete-python | % of ceiling | % of ceiling (CPU/call) |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        vs_cp = f"{r['vs_cp']:.1f}x" if r.get("vs_cp") else ""
        vs_ceil = f"{r['vs_ceiling'] * 100:.0f}%" if r.get("vs_ceiling") else ""
        cpu_ceil = f"{r['cpu_vs_ceiling'] * 100:.0f}%" if r.get("cpu_vs_ceiling") else ""
        us = f"{r['server_us_per_call']:.1f}" if r.get("server_us_per_call") else ""
        answered = r.get("answered_conns", "")
        lines.append(f"| {r['server']} | {r['ids_per_call']} | {r['conns']} | {r['calls_per_s']:,.0f} | "
                     f"{r['mb_per_s']:,.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['errors']} / {r['refused']} / {r['dropped']} / {r.get('timed_out', 0)}"
                     f"{' (server exited)' if r.get('server_exited') else ''} | {answered} | "
                     f"{us} | {vs_cp} | {vs_ceil} | {cpu_ceil} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(dict.fromkeys(r["server"] for r in rows))
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(servers)}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for row_axes, k, metric, label in ((axes[0], 1, "calls_per_s", "calls/s"), (axes[1], 20, "mb_per_s", "MB/s")):
        for server in servers:
            pts = sorted((r["conns"], r[metric], r["p99_ms"]) for r in rows
                         if r["server"] == server and r["ids_per_call"] == k and r["calls_per_s"])
            if not pts:
                continue
            style = "--o" if server.startswith("cp-") else ":s" if server == "ceiling" else "-o"
            for ax, i in ((row_axes[0], 1), (row_axes[1], 2)):
                # A row with no call sent and answered inside the window has no p99 (NaN): left out of the plot.
                xy = [(p[0], p[i]) for p in pts if p[i] is not None and p[i] > 0 and math.isfinite(p[i])]
                if xy:
                    ax.plot([x for x, _ in xy], [y for _, y in xy], style, color=colors[server], label=server)
        row_axes[0].set(xscale="log", yscale="log", xlabel="connections", ylabel=label,
                        title=f"{k} id{'s' if k > 1 else ''} per call: {label}")
        row_axes[1].set(xscale="log", yscale="log", xlabel="connections", ylabel="p99 latency (ms)",
                        title=f"{k} id{'s' if k > 1 else ''} per call: p99 latency")
        row_axes[1].legend(fontsize=7, loc="upper left")
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def render(path: str) -> int:
    with open(path) as f:
        result = json.load(f)
    good = [r for r in result["rows"] if not r.get("failed")]
    for r in good:
        if r.get("server_cpu") and r.get("calls_per_s"):
            r["server_us_per_call"] = r["server_cpu"] / r["calls_per_s"] * 1e6
    add_ratios(good)
    base = os.path.splitext(path)[0]
    meta = result["meta"]
    plot(good, base + ".png", f"aioaccess fetch benchmark {meta['date']} ({meta['machine']['cpus']} CPUs, "
         f"codec={meta['codec']})")
    with open(base + ".md", "w") as f:
        f.write(format_markdown(good) + "\n")
    print(format_table(good))
    for lim in result.get("limits", []):
        print(f"  {lim['server']:<26} k={lim['ids_per_call']:<2} conns {lim['conns']:>5}: "
              f"{lim['calls_per_s']:9.0f} ops/s  p99 {lim.get('p99_ms') or float('nan'):.2f} ms")
    return 0


def measure(name: str, port: int, pid: int, corpus: Corpus, c: int, k: int, duration: float, warmup: float,
            min_reply: int, args: argparse.Namespace) -> dict[str, Any]:
    """One row: the load generator against one server; best of ``--rounds`` runs."""
    spy = None
    if args.py_spy and name.startswith("aio-") and k == 1 and c == 128:
        spy = start_py_spy(pid, os.path.join(args.py_spy, f"{name}.txt"), duration + warmup)
    best: dict[str, Any] | None = None
    for _ in range(max(1, args.rounds)):
        result = run_loadgen(port, pid, corpus, c, k, duration, warmup, min_reply)
        if best is None or result.get("calls_per_s", 0) > best.get("calls_per_s", 0):
            best = result
        spy = _finish_py_spy(spy, name, args)
    assert best is not None
    best.update(server=name, corpus=os.path.basename(corpus.root), load_avg=os.getloadavg()[0])
    if not alive(pid):
        best["server_exited"] = True
        logger.error("%s exited during its %d-connection row", name, c)
    if best.get("server_cpu") and best.get("calls_per_s"):
        best["server_us_per_call"] = best["server_cpu"] / best["calls_per_s"] * 1e6
    logger.info("%-18s k=%-2d c=%-4d %9.0f calls/s %8.1f MB/s p99 %7.2f ms err %d refused %d dropped %d "
                "srv cpu %.2f lg cpu %.2f", name, k, c, best["calls_per_s"], best.get("mb_per_s", 0),
                best.get("p99_ms", 0), best.get("errors", 0), best.get("refused", 0), best.get("dropped", 0),
                best.get("server_cpu") or 0, best.get("loadgen_cpu") or 0)
    return best


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("aioaccess", "concrete", "thrift", "thriftpy2", "uvloop"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _finish_py_spy(spy: subprocess.Popen[bytes] | None, name: str, args: argparse.Namespace) -> None:
    if spy is not None:
        spy.wait(60)
        print(f"\n{name}, 128 connections, py-spy samples:\n"
              + summarize_py_spy(os.path.join(args.py_spy, f"{name}.txt")))
    return None


# -- main -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short rows, fewer servers and counts (~2 min)")
    parser.add_argument("--servers", help=f"comma-separated subset of {','.join(ALL_SERVERS)}")
    parser.add_argument("--conns", help="comma-separated connection counts (default 1,16,128,1024; quick 1,16,128)")
    parser.add_argument("--mb-conns", help="connection counts of the 20-ids-per-call rows (default 1,16,128; quick 16)")
    parser.add_argument("--no-mb", action="store_true", help="skip the 20-ids-per-call rows on the ~100 KB corpus")
    parser.add_argument("--no-limits", action="store_true", help="skip redis-benchmark and the raw S3 GET rate")
    parser.add_argument("-n", type=int, default=5000, help="Communications in the main corpus")
    parser.add_argument("--size", type=int, default=6000, help="bytes per Communication in the main corpus")
    parser.add_argument("--duration", type=float, help="measured seconds per row (default 5; quick 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row (default 1; quick 0.5)")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/fetch-<date>.json)")
    parser.add_argument("--py-spy", metavar="DIR", help="sample each aioaccess server with py-spy during its "
                        "128-connection, 1-id row; write DIR/<server>.txt and print where the time goes")
    parser.add_argument("--rounds", type=int, default=1, help="runs per row; the best is kept (default 1)")
    parser.add_argument("--render", metavar="JSON", help="only re-print the table and redraw the plot of a result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.render:
        return render(args.render)
    raise_nofile()

    servers = args.servers.split(",") if args.servers else (QUICK_SERVERS if args.quick else ALL_SERVERS)
    conns = [int(c) for c in args.conns.split(",")] if args.conns else ([1, 16, 128] if args.quick else
                                                                        [1, 16, 128, 1024])
    mb_conns = [int(c) for c in args.mb_conns.split(",")] if args.mb_conns else ([16] if args.quick else [1, 16, 128])
    duration = args.duration or (2.0 if args.quick else 5.0)
    warmup = args.warmup or (0.5 if args.quick else 1.0)
    env_extra: dict[str, str] = {}
    if any(s not in ALL_SERVERS for s in servers):
        parser.error(f"unknown server in {servers}; choose from {ALL_SERVERS}")

    plans: list[tuple[Corpus, int, list[int]]] = [(ensure_corpus(args.n, args.size), 1, conns)]
    if not args.no_mb:
        plans.append((ensure_corpus(1000, 100_000), 20, mb_conns))
    workdir = tempfile.mkdtemp(prefix="aioaccess-bench-")
    services = Services(workdir)
    rows: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    try:
        for corpus, k, counts in plans:
            mean = corpus.mean_size()
            min_reply = int(k * mean * 0.5)
            # Every server of this corpus runs at once (idle but one), so each connection count is measured
            # for all servers within a minute or so: their ratios see the same machine.
            live: dict[str, tuple[int, int]] = {}
            with contextlib.ExitStack() as stack:
                for name in servers:
                    try:
                        live[name] = stack.enter_context(running(name, corpus, k, services, workdir, env_extra))
                    except Exception as exc:  # noqa: BLE001 - one server failing must not lose the others' rows
                        logger.error("%s (k=%d) failed to start: %s", name, k, exc)
                        rows.append({"server": name, "ids_per_call": k, "conns": 0, "calls_per_s": 0.0,
                                     "failed": str(exc)})
                for c in counts:
                    for name, (port, pid) in live.items():
                        try:
                            rows.append(measure(name, port, pid, corpus, c, k, duration, warmup, min_reply, args))
                        except Exception as exc:  # noqa: BLE001
                            logger.error("%s (k=%d, %d conns) failed: %s", name, k, c, exc)
                            rows.append({"server": name, "ids_per_call": k, "conns": c, "calls_per_s": 0.0,
                                         "failed": str(exc)})
            if not args.no_limits:
                for c in counts:
                    try:
                        if "aio-redis" in servers or "aio-redis-py" in servers:
                            limits.append({**redis_limit(services, int(mean), c, 20000 if k == 1 else 2000),
                                           "ids_per_call": k})
                        if "aio-s3" in servers:
                            limits.append({**s3_limit(services, corpus, min(c, 128), duration), "ids_per_call": k,
                                           "value_bytes": int(mean)})
                    except Exception as exc:  # noqa: BLE001
                        logger.error("backend limit at %d conns failed: %s", c, exc)
    finally:
        services.close()
    order = {name: i for i, name in enumerate(servers)}
    rows.sort(key=lambda r: (bool(r.get("failed")), r["ids_per_call"], order.get(r["server"], 99), r["conns"]))
    good = [r for r in rows if not r.get("failed")]
    add_ratios(good)
    from aioaccess import codec

    stamp = dt.datetime.now(dt.UTC)
    meta = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg()},
        "codec": codec.IMPLEMENTATION,
        "apache_thrift_fastbinary": fastbinary_compiled(),
        "versions": _versions(),
        "duration_s": duration, "warmup_s": warmup,
        "corpora": [{"root": c.root, "n": c.n, "size": c.size, "mean_bytes": round(c.mean_size())}
                    for c, _, _ in plans],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    os.makedirs(RESULTS, exist_ok=True)
    out = args.out or os.path.join(RESULTS, f"fetch-{stamp:%Y-%m-%d}.json")
    with open(out, "w") as f:
        json.dump({"meta": meta, "rows": rows, "limits": limits}, f, indent=1)
    png = os.path.splitext(out)[0] + ".png"
    plot(good, png, f"aioaccess fetch benchmark {meta['date']} ({os.cpu_count()} CPUs, codec={codec.IMPLEMENTATION})")
    print()
    print(format_table(good))
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(format_markdown(good) + "\n")
    for r in rows:
        if r.get("failed"):
            print(f"FAILED {r['server']} k={r['ids_per_call']}: {r['failed']}")
        if r.get("server_exited"):
            print(f"EXITED {r['server']} k={r['ids_per_call']}: gone after its {r['conns']}-connection row")
    if limits:
        print("\nbackend limits:")
        for lim in limits:
            print(f"  {lim['server']:<26} k={lim['ids_per_call']:<2} conns {lim['conns']:>5}: "
                  f"{lim['calls_per_s']:9.0f} ops/s  p99 {lim.get('p99_ms') or float('nan'):.2f} ms")
    print(f"\nwrote {out} and {png} in {meta['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
