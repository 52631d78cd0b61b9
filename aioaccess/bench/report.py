"""The benchmark report: a progress bar, a table on the terminal, a JSON file, and a plot."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import IO, Any

__all__ = ["PlotUnavailable", "Progress", "bottlenecks", "print_table", "write_json", "write_plot"]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


class Progress:
    """A rich progress bar on stderr, or nothing when it is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        console = Console(stderr=True)
        self.progress = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True,
                            disable=not (enabled and console.is_terminal))

    def __enter__(self) -> Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, label: str, total: int | None) -> Callable[[int], None]:
        task = self.progress.add_task(label, total=total)
        return lambda done: self.progress.update(task, completed=done)


def bottlenecks(report: dict[str, Any]) -> list[str]:
    """One line per phase whose client process used about one core: the client, not the server, was the limit."""
    seen = {}
    for row in report["results"]:
        if row.get("client_bound"):
            key = (row["phase"], row["concurrency"])
            seen[key] = (f"{row['phase']} c={row['concurrency']}: client CPU {row['client_cpu_cores']:.2f} cores "
                         f"per process, its event loop {row.get('loop_cpu_cores', 0.0):.2f} "
                         f"({row.get('procs', 1)} process(es)): the client was the bottleneck, not the server; "
                         "try --procs")
    return list(seen.values())


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
                          ("p99 ms", "right"), ("max ms", "right"), ("TTFB p50", "right"),
                          ("CPU s/1k ops", "right"), ("client cores", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    server = any("server_cpu_s_per_1000_ops" in row for row in report["results"])
    if server:
        table.add_column("server CPU s/1k ops", justify="right")
    for row in sorted(report["results"], key=lambda r: (r["phase"] != r["op"], r["op"], r["concurrency"])):
        lat = row["latency_ms"]
        op = row["op"] if row["phase"] == row["op"] else f"{row['op']} ({row['phase']})"
        cells = [op, str(row["concurrency"]), f"{row['ok']}/{row['issued']}", _errors(row),
                 f"{row['ops_per_s']:,.1f}", f"{row['mb_per_s']:,.2f}", f"{lat['p50']:.2f}",
                 f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['max']:.2f}",
                 f"{row['ttfb_ms']['p50']:.2f}" if "ttfb_ms" in row else "-", f"{row['cpu_s_per_1000_ops']:.3f}",
                 f"{row.get('client_cpu_cores', 0.0):.2f}"]
        if server:
            cells.append(f"{row['server_cpu_s_per_1000_ops']:.3f}" if "server_cpu_s_per_1000_ops" in row else "-")
        table.add_row(*cells)
    console.print(table)
    for line in bottlenecks(report):
        console.print(f"[bold]note:[/bold] {line}")
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
    fig, (ax_t, ax_l, ax_s) = plt.subplots(1, 3, figsize=(16, 4.2))
    for label, rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r["concurrency"])
        xs: Sequence[int] = [r["concurrency"] for r in rows]
        ax_t.plot(xs, [r["ops_per_s"] for r in rows], marker="o", label=label)
        ax_l.plot(xs, [r["latency_ms"]["p99"] for r in rows], marker="o", label=label)
        for r in rows:
            points = r.get("series") or []
            ax_s.plot([p["t"] + 0.5 for p in points], [p["ops_per_s"] for p in points], marker=".",
                      label=f"{label} c={r['concurrency']}")
    levels = sorted({r["concurrency"] for r in report["results"]})
    for ax, ylabel in ((ax_t, "ops/s (all workers running)"), (ax_l, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrency")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_s.set_xlabel("second of the phase")
    ax_s.set_ylabel("ops/s in that second")
    ax_s.grid(True, alpha=0.3)
    ax_s.legend(fontsize="small")
    ax_l.set_yscale("log")
    extra = f", +{report['config']['latency_ms']:g} ms each way" if report["config"].get("latency_ms") else ""
    client = f", client {report['client']}" if report.get("client") else ""
    fig.suptitle(f"aioaccess bench {report['kind']} {report['target']}{client}{extra}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
