"""The benchmark report: a table on the terminal, a JSON file, and a plot."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["PlotUnavailable", "print_table", "write_json", "write_plot"]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _errors(row: dict[str, Any]) -> str:
    if not row["errors"]:
        return "0"
    return ", ".join(f"{kind}:{n}" for kind, n in row["errors"].items())


def print_table(report: dict[str, Any], file: IO[str] | None = None) -> None:
    """One row per op and concurrency (rich table; plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    if not console.is_terminal:  # a pipe or file: no 80-column squeeze
        console = Console(file=file, width=160)
    extra = [f"client {report['client']}"] if report.get("client") else []
    if report["config"].get("latency_ms"):
        extra.append(f"+{report['config']['latency_ms']:g} ms each way")
    title = f"aioaccess bench {report['kind']} {report['target']}" + (f" ({', '.join(extra)})" if extra else "")
    table = Table(title=title, title_justify="left")
    for name, justify in (("op", "left"), ("conc", "right"), ("ok/issued", "right"), ("errors", "left"),
                          ("ops/s", "right"), ("MB/s", "right"), ("p50 ms", "right"), ("p90 ms", "right"),
                          ("p99 ms", "right"), ("max ms", "right"), ("CPU s/1k ops", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    server = any("server_cpu_s_per_1000_ops" in row for row in report["results"])
    if server:
        table.add_column("server CPU s/1k ops", justify="right")
    for row in sorted(report["results"], key=lambda r: (r["phase"] != r["op"], r["op"], r["concurrency"])):
        lat = row["latency_ms"]
        op = row["op"] if row["phase"] == row["op"] else f"{row['op']} ({row['phase']})"
        cells = [op, str(row["concurrency"]), f"{row['ok']}/{row['issued']}", _errors(row),
                 f"{row['ops_per_s']:,.1f}", f"{row['mb_per_s']:,.2f}", f"{lat['p50']:.2f}",
                 f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.2f}", f"{row['cpu_s_per_1000_ops']:.3f}"]
        if server:
            cells.append(f"{row['server_cpu_s_per_1000_ops']:.3f}" if "server_cpu_s_per_1000_ops" in row else "-")
        table.add_row(*cells)
    console.print(table)
    if report.get("cleanup"):
        console.print(f"cleanup: {report['cleanup']}")


def write_json(report: dict[str, Any], path: str) -> None:
    """Write ``report`` to ``path`` (atomically)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def write_plot(report: dict[str, Any], path: str) -> None:
    """Throughput and p99 latency against concurrency, one line per op, to a PNG."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'aioaccess[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = {}
    for row in report["results"]:
        label = row["op"] if row["phase"] == row["op"] else f"{row['op']} ({row['phase']})"
        series.setdefault(label, []).append(row)
    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        xs: Sequence[int] = [r["concurrency"] for r in rows]
        ax_t.plot(xs, [r["ops_per_s"] for r in rows], marker="o", label=label)
        ax_l.plot(xs, [r["latency_ms"]["p99"] for r in rows], marker="o", label=label)
    levels = sorted({r["concurrency"] for r in report["results"]})
    for ax, ylabel in ((ax_t, "ops/s"), (ax_l, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrency")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_l.set_yscale("log")
    extra = f", +{report['config']['latency_ms']:g} ms each way" if report["config"].get("latency_ms") else ""
    client = f", client {report['client']}" if report.get("client") else ""
    fig.suptitle(f"aioaccess bench {report['kind']} {report['target']}{client}{extra}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
