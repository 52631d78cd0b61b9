"""Relay and HTTP/TJSON benchmark: concrete-python and aioaccess side by side, in one run.

``python -m benchmarks.bench_relay_http`` (about 1-2 minutes):

Relay, framed compact, ``benchmarks.loadgen`` at 128 connections, one id per fetch:

- ``cp-relay``: concrete-python's ``RelayFetchHandler`` served by its
  ``FetchCommunicationServiceWrapper``, in front of its memory-backed ``fetch-server.py``
- ``aio-relay``: ``aioaccess relay-server`` in front of ``aioaccess fetch-server`` (memory-backed)
- ``aio-relay/no-pipe``: the same with ``--no-pipelining`` (one call at a time per upstream connection)
- ``aio-relay/cp-up``: ``aioaccess relay-server`` in front of concrete-python's server (for reference:
  the upstream then bounds the relay)

HTTP/TJSON, single-Communication ``fetch`` calls from an aiohttp load generator at 16 connections:

- ``cp-http``: concrete-python's ``access-http-server.py`` (Bottle)
- ``aio-http``: ``aioaccess http-server``

Every server is checked first with concrete-python's own client (bytes equal to the
corpus).  Servers and the load generator run as separate processes; the machine's other
load shows up in the numbers, so compare rows of the same run.  Results go to
``benchmarks/results/relay-http-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from .corpus import Corpus, ensure_corpus
from .loadgen import proc_cpu_seconds, raise_nofile

__all__ = ["main"]

logger = logging.getLogger("benchmarks.bench_relay_http")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
BIN = os.path.dirname(sys.executable)

CP_RELAY = ("import sys\n"
            "from concrete.util.access import RelayFetchHandler\n"
            "from concrete.util.access_wrapper import FetchCommunicationServiceWrapper\n"
            "FetchCommunicationServiceWrapper(RelayFetchHandler('127.0.0.1', int(sys.argv[1])))"
            ".serve('127.0.0.1', int(sys.argv[2]))\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(log, errors="replace") as f:
                raise RuntimeError(f"server on {port} did not start (exit {proc.poll()}):\n{f.read()[-3000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def running(name: str, argv: list[str], port: int, workdir: str) -> Iterator[int]:
    """Run ``argv`` until the block ends; yields its pid once ``port`` accepts connections."""
    log = os.path.join(workdir, name.replace("/", "_") + ".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_port(port, proc, 120, log)
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def aio(*argv: str) -> list[str]:
    return [sys.executable, "-m", "aioaccess", *argv, "-l", "WARNING"]


def cp_fetch_server(source: str, port: int) -> list[str]:
    return [sys.executable, os.path.join(BIN, "fetch-server.py"), "--host", "127.0.0.1", "-p", str(port),
            "-l", "warning", source]


# -- checks -------------------------------------------------------------------
def check_thrift(port: int, corpus: Corpus) -> None:
    from concrete.access.ttypes import FetchRequest
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    ids = corpus.ids()[:3]
    with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
        comms = client.fetch(FetchRequest(communicationIds=ids)).communications
    if [write_communication_to_buffer(c) for c in comms] != [corpus.raw(i) for i in ids]:
        raise RuntimeError(f"server on {port} does not serve the corpus's bytes")


def check_http(url: str, corpus: Corpus) -> None:
    from concrete.access.ttypes import FetchRequest
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import HTTPFetchCommunicationClientWrapper

    ids = corpus.ids()[:3]
    with HTTPFetchCommunicationClientWrapper(url) as client:
        comms = client.fetch(FetchRequest(communicationIds=ids)).communications
    if [write_communication_to_buffer(c) for c in comms] != [corpus.raw(i) for i in ids]:
        raise RuntimeError(f"{url} does not serve the corpus's bytes")


# -- load ---------------------------------------------------------------------
def thrift_load(port: int, pid: int, corpus: Corpus, conns: int, duration: float, warmup: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--port", str(port), "--ids-file",
            os.path.join(corpus.root, "ids.txt"), "-c", str(conns), "-k", "1", "-d", str(duration),
            "-w", str(warmup), "--server-pid", str(pid), "--min-reply", "1000"]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=duration + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout)


def http_load(url: str, pid: int, corpus: Corpus, conns: int, duration: float, warmup: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.bench_relay_http", "--http-loadgen", url,
            "--ids-file", os.path.join(corpus.root, "ids.txt"), "--conns", str(conns), "--duration", str(duration),
            "--warmup", str(warmup), "--server-pid", str(pid)]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=duration + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"HTTP loadgen failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout)


async def _http_load(url: str, ids: list[str], conns: int, duration: float, warmup: float,
                     server_pid: int | None) -> dict[str, Any]:
    """``conns`` workers POST single-id TJSON fetches back to back over keep-alive connections."""
    import aiohttp

    rng = random.Random(0)
    bodies = [f'[1,"fetch",1,{n},{{"1":{{"rec":{{"1":{{"lst":["str",1,{json.dumps(rng.choice(ids))}]}}}}}}}}]'
              .encode() for n in range(4096)]
    headers = {"Content-Type": "application/x-thrift"}
    latencies: list[float] = []
    errors = 0
    examples: list[str] = []
    t_start = time.perf_counter() + warmup
    t_end = t_start + duration
    connector = aiohttp.TCPConnector(limit=conns, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(w: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        i = w * 997
        while True:
            i += 1
            sent = time.perf_counter()
            if sent >= t_end:
                return
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as resp:
                    body = await resp.read()
                ok = resp.status == 200 and body.startswith(b'[1,"fetch",2,') and b'"lst":["rec",1,' in body
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, body = False, repr(exc).encode()
            now = time.perf_counter()
            if not ok:
                errors += 1
                if len(examples) < 3:
                    examples.append(body[:200].decode(errors="replace"))
            elif t_start <= now <= t_end:
                latencies.append(now - sent)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(worker(w, session)) for w in range(conns)]
        gc.disable()
        await asyncio.sleep(max(0.0, t_start - time.perf_counter()))
        server0 = proc_cpu_seconds(server_pid) if server_pid else None
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, t_end - time.perf_counter()))
        server1 = proc_cpu_seconds(server_pid) if server_pid else None
        cpu1 = time.process_time()
        await asyncio.gather(*tasks)
        gc.enable()
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")

    return {
        "conns": conns, "duration_s": duration, "calls": len(lat), "calls_per_s": len(lat) / duration,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1e3 if lat else float("nan"),
        "errors": errors, "error_examples": examples, "loadgen_cpu": (cpu1 - cpu0) / duration,
        "server_cpu": (server1 - server0) / duration if server0 is not None and server1 is not None else None,
    }


# -- the run --------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    loadavg_at_start = os.getloadavg()
    corpus = ensure_corpus(args.n, args.size, args.seed)
    rows: list[dict[str, Any]] = []
    workdir = tempfile.mkdtemp(prefix="bench-relay-http-")
    logger.info("Corpus %s (%d Communications, mean %.0f bytes); logs in %s", corpus.root, corpus.n,
                corpus.mean_size(), workdir)

    def record(name: str, kind: str, result: dict[str, Any]) -> None:
        row = {"server": name, "kind": kind, **result}
        rows.append(row)
        logger.info("%-16s %7.0f calls/s  p50 %7.2f ms  p99 %8.2f ms  errors %d", name, row["calls_per_s"],
                    row.get("p50_ms", float("nan")), row.get("p99_ms", float("nan")), row.get("errors", 0))

    relay_cases = [
        ("cp-relay", "cp", lambda up, port: [sys.executable, "-c", CP_RELAY, str(up), str(port)]),
        ("aio-relay", "aio", lambda up, port: aio("relay-server", "127.0.0.1", str(up), "--port", str(port),
                                                  "--max-connections", "100000")),
        ("aio-relay/no-pipe", "aio", lambda up, port: aio("relay-server", "127.0.0.1", str(up), "--port", str(port),
                                                          "--max-connections", "100000", "--no-pipelining")),
        ("aio-relay/cp-up", "cp", lambda up, port: aio("relay-server", "127.0.0.1", str(up), "--port", str(port),
                                                       "--max-connections", "100000")),
    ]
    for name, upstream_kind, relay_argv in relay_cases:
        if args.only and name not in args.only:
            continue
        up = free_port()
        up_argv = cp_fetch_server(corpus.tgz_path, up) if upstream_kind == "cp" else \
            aio("fetch-server", corpus.tgz_path, "--port", str(up), "--max-connections", "100000")
        port = free_port()
        with running(f"{name}-upstream", up_argv, up, workdir) as up_pid, \
                running(name, relay_argv(up, port), port, workdir) as pid:
            check_thrift(port, corpus)
            up0, t0 = proc_cpu_seconds(up_pid), time.perf_counter()
            result = thrift_load(port, pid, corpus, args.relay_conns, args.duration, args.warmup)
            up1, t1 = proc_cpu_seconds(up_pid), time.perf_counter()
            if up0 is not None and up1 is not None:
                result["upstream_cpu"] = (up1 - up0) / (t1 - t0)  # warmup and start-up included
            record(name, "relay", result)

    source = corpus.directory if args.http_source == "dir" else corpus.tgz_path
    http_cases = [
        ("cp-http", lambda port: [sys.executable, os.path.join(BIN, "access-http-server.py"), "--host", "127.0.0.1",
                                  "-p", str(port), "-l", "warning", "--store-path", workdir, source]),
        ("aio-http", lambda port: aio("http-server", source, "--port", str(port))),
    ]
    for name, argv in http_cases:
        if args.only and name not in args.only:
            continue
        port = free_port()
        with running(name, argv(port), port, workdir) as pid:
            url = f"http://127.0.0.1:{port}/fetch_http_endpoint/"
            check_http(url, corpus)
            record(name, "http", http_load(url, pid, corpus, args.http_conns, args.duration, args.warmup))

    by_name = {r["server"]: r for r in rows}
    ratios = {}
    for ours, theirs in (("aio-relay", "cp-relay"), ("aio-http", "cp-http")):
        if ours in by_name and theirs in by_name and by_name[theirs]["calls_per_s"]:
            ratios[f"{ours} / {theirs}"] = by_name[ours]["calls_per_s"] / by_name[theirs]["calls_per_s"]
    loadavg_at_end = os.getloadavg()
    return {
        "meta": {
            "loadavg_at_end": loadavg_at_end,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg_at_start": loadavg_at_start, "corpus": {"n": corpus.n, "size": corpus.size,
                                                            "mean_bytes": round(corpus.mean_size())},
            "duration_s": args.duration, "warmup_s": args.warmup, "relay_conns": args.relay_conns,
            "http_conns": args.http_conns, "http_source": args.http_source,
            "targets": {"aio-relay / cp-relay": ">= 10x, aio-relay p99 <= 20 ms", "aio-http / cp-http": ">= 10x"},
        },
        "rows": rows,
        "ratios": ratios,
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'server':<18}{'kind':<7}{'conns':>6}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>10}{'errors':>8}"
             f"{'srv cpu':>9}{'gen cpu':>9}{'up cpu':>9}"]
    for r in report["rows"]:
        srv = r.get("server_cpu")
        lines.append(f"{r['server']:<18}{r['kind']:<7}{r['conns']:>6}{r['calls_per_s']:>10.0f}{r['p50_ms']:>9.2f}"
                     f"{r['p99_ms']:>10.2f}{r['errors']:>8}{(srv if srv is not None else float('nan')):>9.2f}"
                     f"{r.get('loadgen_cpu', float('nan')):>9.2f}{r.get('upstream_cpu', float('nan')):>9.2f}")
    for name, ratio in report["ratios"].items():
        lines.append(f"{name}: {ratio:.1f}x")
    meta = report["meta"]
    start, end = meta["loadavg_at_start"][0], meta["loadavg_at_end"][0]
    lines.append(f"load average (1 min) at start / end: {start:.1f} / {end:.1f} on {meta['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="Communications in the corpus (default: 1000)")
    parser.add_argument("--size", type=int, default=6000, help="bytes per Communication (default: 6000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per server (default: 4)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--relay-conns", type=int, default=128)
    parser.add_argument("--http-conns", type=int, default=16)
    parser.add_argument("--http-source", choices=("dir", "mem"), default="dir",
                        help="what both HTTP servers serve from: the directory or the tar.gz in memory")
    parser.add_argument("--only", nargs="*", help="run only these servers")
    parser.add_argument("--out", help="JSON path (default: benchmarks/results/relay-http-DATE.json)")
    parser.add_argument("--http-loadgen", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.http_loadgen:  # the load generator process
        import uvloop

        with open(args.ids_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        result = uvloop.run(_http_load(args.http_loadgen, ids, args.conns, args.duration, args.warmup,
                                       args.server_pid))
        json.dump(result, sys.stdout)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    raise_nofile(4096)
    report = run(args)
    os.makedirs(RESULTS, exist_ok=True)
    out = args.out or os.path.join(RESULTS, f"relay-http-{dt.date.today().isoformat()}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(format_table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
