"""Redis and Redis Cluster side by side in one run: fetch serving, paging, and what redis-server itself does.

``python -m benchmarks.bench_redis`` starts a redis-server and a 3-master Redis
Cluster (no replicas) on this machine, loads the corpus into both with
``aioaccess copy`` (one hash on ``redis://``, 64 buckets on ``redis+cluster://``),
then, for each connection count, runs ``benchmarks.loadgen`` against:

- ``aio-redis``: ``aioaccess fetch-server redis://`` (the default: the pipelined fast path)
- ``aio-redis-py``: the same with ``--redis-client redis-py`` (the path before it)
- ``aio-cluster``: ``aioaccess fetch-server redis+cluster://``
- ``aio-dir``: ``aioaccess fetch-server`` on the corpus directory (the local path, for scale)

and ``redis-benchmark -t get`` with the corpus's mean value size, and prints
calls/s, server CPU per call and the ratios the issue asks for.  It also pages
through every id (``getCommunicationIDs``, pages of 100) on both layouts and
reports the whole walk against the first page and against every id in one
call (``walk_vs_one_call``: paging costs what one listing costs), and how
the cluster corpus is spread over the masters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from .bench_fetch import check_server, free_port, redis_limit, run_loadgen, stop, wait_port
from .corpus import Corpus, ensure_corpus
from .loadgen import raise_nofile

__all__ = ["main"]

KEY = "bench"
SHARDS = 64


def start_redis(workdir: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    os.makedirs(os.path.join(workdir, str(port)), exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", os.path.join(workdir, str(port)), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, 10)
    return proc, port


def start_cluster(workdir: str, masters: int = 3) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for _ in range(masters):
        proc, port = start_redis(workdir, "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                                 "--cluster-config-file", "nodes.conf")
        procs.append(proc)
        ports.append(port)
    subprocess.run(["redis-cli", "-p", str(ports[0]), "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-yes"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = [subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True, text=True).stdout
                for p in ports]
        if all("cluster_state:ok" in i for i in info):
            return procs, ports
        time.sleep(0.1)
    raise RuntimeError("cluster did not become ok")


def aioaccess(*argv: str) -> str:
    out = subprocess.run([sys.executable, "-m", "aioaccess", *argv], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"aioaccess {argv[0]} failed: {out.stderr[-2000:]}")
    return out.stdout.strip()


def spread(ports: list[int]) -> list[int]:
    """Communications held by each master."""
    import redis

    counts = []
    for port in ports:
        with redis.Redis(port=port) as db:
            counts.append(sum(db.hlen(k) for k in db.scan_iter(match=f"{KEY}:{{*}}") if not k.endswith(b":ids")))
    return counts


def hmget_calls(ports: list[int]) -> int:
    """HMGETs the redis-servers on ``ports`` have answered so far (INFO commandstats)."""
    import redis

    total = 0
    for port in ports:
        with redis.Redis(port=port) as db:
            total += int(db.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))
    return total


async def _paging(port: int, total: int, page: int) -> dict[str, Any]:
    from aioaccess import FetchCommunicationClient

    async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=120) as client:
        await client.getCommunicationIDs(0, page)  # warm the connection
        started = time.perf_counter()
        first = await client.getCommunicationIDs(0, page)
        first_s = time.perf_counter() - started
        times: list[float] = []
        seen = 0
        walk_started = time.perf_counter()
        for offset in range(0, total, page):
            t = time.perf_counter()
            seen += len(await client.getCommunicationIDs(offset, page))
            times.append(time.perf_counter() - t)
        walk_s = time.perf_counter() - walk_started
        t = time.perf_counter()
        count = await client.getCommunicationCount()
        count_s = time.perf_counter() - t
        t = time.perf_counter()
        every = await client.getCommunicationIDs(0, total)  # every id in one call: what the walk is measured against
        one_call_s = time.perf_counter() - t
    assert len(first) == page and seen == total == count == len(every), (len(first), seen, total, count, len(every))
    ordered = sorted(times)
    return {"pages": len(times), "first_page_ms": first_s * 1e3, "median_page_ms": ordered[len(times) // 2] * 1e3,
            "last_page_ms": times[-1] * 1e3, "slowest_page_ms": ordered[-1] * 1e3,
            "mean_page_ms": sum(times) / len(times) * 1e3, "walk_s": walk_s, "count_ms": count_s * 1e3,
            "median_vs_first": ordered[len(times) // 2] / first_s, "walk_vs_first": walk_s / first_s,
            "one_call_ms": one_call_s * 1e3, "walk_vs_one_call": walk_s / one_call_s}


def serve(argv: list[str], workdir: str, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with open(os.path.join(workdir, f"{name}.log"), "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aioaccess", "fetch-server", *argv, "--port", str(port),
                                 "-l", "WARNING", "--max-connections", "10000"], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, 120)
    return proc, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="Communications in the corpus (default 20,000)")
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--conns", default="16,128")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--servers", default="aio-redis,aio-redis-py,aio-cluster,aio-dir")
    parser.add_argument("--out", help="JSON results path")
    parser.add_argument("--paging-without-index", action="store_true",
                        help="also page through the single hash with its index set aside (HKEYS per page)")
    args = parser.parse_args(argv)
    raise_nofile()
    corpus: Corpus = ensure_corpus(args.n, args.size)
    mean = int(corpus.mean_size())
    workdir = tempfile.mkdtemp(prefix="aioaccess-bench-redis-")
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"load_avg_start": os.getloadavg(), "rows": [], "limits": [], "paging": {}}
    try:
        redis_proc, redis_port = start_redis(workdir)
        cluster_procs, cluster_ports = start_cluster(workdir)
        procs += [redis_proc, *cluster_procs]
        single = f"redis://127.0.0.1:{redis_port}/0"
        cluster = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster_ports) + "/"
        for target, extra in ((single, []), (cluster, ["--shards", str(SHARDS)])):
            t = time.perf_counter()
            summary = aioaccess("copy", corpus.directory, target, "--redis-key", KEY, "--no-progress", *extra)
            print(f"copy -> {target.split(':')[0]}: {summary} ({time.perf_counter() - t:.1f} s wall)")
        result["spread"] = spread(cluster_ports)
        print(f"cluster spread over masters: {result['spread']} "
              f"(max {max(result['spread']) / sum(result['spread']):.1%})")
        commands = {"aio-redis": [single, "--redis-key", KEY],
                    "aio-redis-py": [single, "--redis-key", KEY, "--redis-client", "redis-py"],
                    "aio-cluster": [cluster, "--redis-key", KEY, "--shards", str(SHARDS)],
                    "aio-dir": [corpus.directory]}
        live = {}
        for name in args.servers.split(","):
            proc, port = serve(commands[name], workdir, name)
            procs.append(proc)
            check_server(port, corpus, 3)
            live[name] = (proc, port)
        for name in ("aio-redis", "aio-cluster"):
            if name in live:
                result["paging"][name] = asyncio.run(_paging(live[name][1], args.n, 100))
                print(f"{name} paging: {json.dumps({k: round(v, 3) for k, v in result['paging'][name].items()})}")
        if "aio-redis" in live and args.paging_without_index:  # what paging cost before the index (HKEYS a page)
            subprocess.run(["redis-cli", "-p", str(redis_port), "rename", f"{KEY}:ids", f"{KEY}:ids-aside"],
                           check=True, capture_output=True)
            result["paging"]["aio-redis-no-index"] = asyncio.run(_paging(live["aio-redis"][1], args.n, 100))
            subprocess.run(["redis-cli", "-p", str(redis_port), "rename", f"{KEY}:ids-aside", f"{KEY}:ids"],
                           check=True, capture_output=True)
            print(f"aio-redis paging without the index: "
                  f"{json.dumps({k: round(v, 3) for k, v in result['paging']['aio-redis-no-index'].items()})}")
        redis_ports = {"aio-redis": [redis_port], "aio-redis-py": [redis_port], "aio-cluster": cluster_ports}
        for c in (int(x) for x in args.conns.split(",")):
            for name, (proc, port) in live.items():
                hmgets = hmget_calls(redis_ports.get(name, []))
                row = run_loadgen(port, proc.pid, corpus, c, 1, args.duration, args.warmup, int(mean * 0.5))
                row.update(server=name, conns=c, server_us_per_call=row["server_cpu"] / row["calls_per_s"] * 1e6)
                hmgets = hmget_calls(redis_ports.get(name, [])) - hmgets
                if hmgets:  # calls of warm-up and window (at the window's rate) per HMGET sent meanwhile
                    row["calls_per_hmget"] = row["calls_per_s"] * (args.duration + args.warmup) / hmgets
                result["rows"].append(row)
                per_hmget = f"  ~{row['calls_per_hmget']:5.1f} calls/HMGET" if hmgets else ""
                print(f"{name:<13} c={c:<4} {row['calls_per_s']:9.0f} calls/s  p99 {row['p99_ms']:6.2f} ms  "
                      f"server {row['server_us_per_call']:5.1f} us/call  errors {row['errors']}{per_hmget}")
            limit = redis_limit_at(redis_port, mean, c)
            result["limits"].append(limit)
            print(f"redis-benchmark GET -d {mean} c={c}: {limit['calls_per_s']:.0f} ops/s")
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_avg_end"] = os.getloadavg()
    print_ratios(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def redis_limit_at(port: int, size: int, conns: int) -> dict[str, Any]:
    class _Services:  # redis_limit takes bench_fetch's Services; only .redis() is used
        def redis(self) -> int:
            return port

    return redis_limit(_Services(), size, conns, 50000)  # type: ignore[arg-type]


def print_ratios(result: dict[str, Any]) -> None:
    print(f"\nload average {result['load_avg_start'][0]:.1f} -> {result['load_avg_end'][0]:.1f}")
    for limit in result["limits"]:
        rows = {r["server"]: r for r in result["rows"] if r["conns"] == limit["conns"]}
        line = [f"c={limit['conns']}: redis-benchmark GET {limit['calls_per_s']:.0f}/s"]
        for name, row in rows.items():
            line.append(f"{name} {row['calls_per_s'] / limit['calls_per_s']:.0%} of it, "
                        f"{row['server_us_per_call']:.1f} us/call")
        if "aio-dir" in rows and "aio-redis" in rows:
            ratio = rows["aio-redis"]["server_us_per_call"] / rows["aio-dir"]["server_us_per_call"]
            line.append(f"redis/dir CPU per call {ratio:.2f}x")
        if "aio-redis" in rows and "aio-cluster" in rows:
            line.append(f"cluster/single {rows['aio-cluster']['calls_per_s'] / rows['aio-redis']['calls_per_s']:.0%}")
        print("; ".join(line))


if __name__ == "__main__":
    raise SystemExit(main())
