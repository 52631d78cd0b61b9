"""The "objects kept" regime of ``bench_codec``: decoded Communications kept, the cyclic GC on.

An application that keeps what it decodes (a batch for annotation, a page for a viewer) makes
the heap grow, and Python's cyclic GC then traverses every tracked object again at each
collection of the older generations.  Two measurements, each side by side with
concrete-python in one run, rounds interleaved, best and median round kept:

* ``decode_kept``: ``read_communication_from_buffer`` over N buffers (default 2,000 of ~6 KB),
  every result appended to a list, process CPU per Communication; with and without
  ``add_references``.  ``baseline`` (when given) is a ``_speedups`` built from another commit.
* ``fetch_kept``: 20 calls of ``fetch`` of 100 ids from one aioaccess fetch server (a
  subprocess), every FetchResult kept; the client's process CPU per Communication for
  aioaccess's ``FetchCommunicationClient`` and concrete-python's
  ``FetchCommunicationClientWrapper`` against the same server.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from concrete.access.ttypes import FetchRequest as CPFetchRequest
from concrete.util import add_references_to_communication as cp_add_references
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CPClientWrapper

from aioaccess import FetchCommunicationClient, FetchRequest, codec
from aioaccess.schema import Communication
from benchmarks.synthetic import make_communication

from .bench_relay_http import aio, free_port, running

__all__ = ["decode_kept", "fetch_kept", "load_baseline", "make_buffers"]


def make_buffers(n: int, size: int = 6000) -> list[bytes]:
    return [codec.encode(make_communication(f"kept-{i}", size=size, seed=i)) for i in range(n)]


def load_baseline(path: str) -> ModuleType:
    """A ``_speedups`` extension built elsewhere (say from ``main``), loaded beside the current one."""
    spec = importlib.util.spec_from_file_location("_speedups", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _summary(samples: list[float], n: int) -> dict[str, float]:
    return {"cpu_us_best": min(samples) / n * 1e6, "cpu_us_median": statistics.median(samples) / n * 1e6,
            "rounds": len(samples)}


def _ratios(out: dict[str, dict[str, float]], pairs: dict[str, tuple[str, str]]) -> dict[str, float]:
    """x = how many times less CPU per Communication ``ours`` needs than ``theirs`` (best rounds)."""
    return {label: out[theirs]["cpu_us_best"] / out[ours]["cpu_us_best"] for label, (ours, theirs) in pairs.items()}


def decode_kept(bufs: list[bytes], rounds: int, baseline: ModuleType | None = None) -> dict[str, Any]:
    """CPU per Communication of decoding ``bufs`` with every result kept, GC on."""
    cases: dict[str, Callable[[bytes], Any]] = {
        "aioaccess": lambda b: codec.read_communication_from_buffer(b, add_references=False),
        "concrete-python": lambda b: cp_read(b, add_references=False),
        "aioaccess+refs": codec.read_communication_from_buffer,
        "concrete-python+refs": cp_read,
    }
    if baseline is not None:
        cases["baseline"] = lambda b: baseline.decode(b, Communication)[0]
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            gc.collect()
            kept = []
            c0 = time.process_time()
            for b in bufs:
                kept.append(fn(b))
            samples[name].append(time.process_time() - c0)
            del kept
    gc.collect()
    out: dict[str, Any] = {name: _summary(s, len(bufs)) for name, s in samples.items()}
    pairs = {"without references": ("aioaccess", "concrete-python"),
             "with references": ("aioaccess+refs", "concrete-python+refs")}
    if baseline is not None:
        pairs["vs baseline build"] = ("aioaccess", "baseline")
    out["x_less_cpu"] = _ratios(out, pairs)
    return out


async def _aio_fetch(port: int, batches: list[list[str]], refs: bool, kept: list[Any]) -> None:
    async with FetchCommunicationClient.connect("127.0.0.1", port) as client:
        for ids in batches:
            kept.append(await client.fetch(FetchRequest(communicationIds=ids), add_references=refs))


def _aio_calls(port: int, batches: list[list[str]], refs: bool) -> list[Any]:
    # Results go to a list, not the main task's result: on 3.11, asyncio.run's SIGINT handler
    # restore formats repr(main task), result included (seconds for 2,000 Communications).
    kept: list[Any] = []
    asyncio.run(_aio_fetch(port, batches, refs, kept))
    return kept


def _cp_calls(port: int, batches: list[list[str]], refs: bool) -> list[Any]:
    with CPClientWrapper("127.0.0.1", port) as client:
        results = [client.fetch(CPFetchRequest(communicationIds=ids)) for ids in batches]
    if refs:  # concrete-python's client adds none: what a user who wants them does
        for result in results:
            for comm in result.communications:
                cp_add_references(comm)
    return results


def fetch_kept(bufs: list[bytes], rounds: int, calls: int = 20, per_call: int = 100) -> dict[str, Any]:
    """Client CPU per Communication of ``calls`` fetches of ``per_call`` ids, every result kept."""
    ids = [f"kept-{i}" for i in range(len(bufs))]
    batches = [ids[(c * per_call) % len(ids):][:per_call] for c in range(calls)]
    n = sum(map(len, batches))
    with tempfile.TemporaryDirectory(prefix="bench-kept-") as tmp:
        comm_dir = os.path.join(tmp, "comms")
        os.mkdir(comm_dir)
        for comm_id, raw in zip(ids, bufs, strict=True):
            with open(os.path.join(comm_dir, f"{comm_id}.comm"), "wb") as f:
                f.write(raw)
        port = free_port()
        with running("aio-fetch", aio("fetch-server", comm_dir, "--port", str(port)), port, tmp):
            cases: dict[str, Callable[[], list[Any]]] = {
                "aioaccess": lambda: _aio_calls(port, batches, False),
                "concrete-python": lambda: _cp_calls(port, batches, False),
                "aioaccess+refs": lambda: _aio_calls(port, batches, True),
                "concrete-python+refs": lambda: _cp_calls(port, batches, True),
            }
            for fn in cases.values():  # warm: connections, caches, the server's page cache
                fn()
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, fn in cases.items():
                    gc.collect()
                    c0 = time.process_time()
                    kept = fn()
                    samples[name].append(time.process_time() - c0)
                    assert sum(len(r.communications) for r in kept) == n
                    del kept
    gc.collect()
    out: dict[str, Any] = {name: _summary(s, n) for name, s in samples.items()}
    out["communications_per_round"] = n
    out["x_less_cpu"] = _ratios(out, {"without references": ("aioaccess", "concrete-python"),
                                      "with references": ("aioaccess+refs", "concrete-python+refs")})
    return out


def print_table(title: str, res: dict[str, Any]) -> None:
    print(f"\n== {title} ==")
    for name, r in res.items():
        if isinstance(r, dict) and "cpu_us_best" in r:
            print(f"  {name:22} {r['cpu_us_best']:9.1f} us/Communication (median {r['cpu_us_median']:.1f})")
    for label, x in res["x_less_cpu"].items():
        print(f"  aioaccess {label}: x{x:.2f} less CPU per Communication")
