"""``aioaccess bench compare A.json B.json ...``: each report's rows as ratios to the first report's.

Rows match by (op, phase, concurrency).  For each later report the table
gives its ops/s, and ``x ops/s`` (its ops/s over the first's: > 1 is
faster), ``x p50``/``x p99`` (its latency over the first's: < 1 is faster)
and ``x CPU/op`` (its client CPU per op over the first's: < 1 is cheaper).
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

__all__ = ["compare", "load_reports", "print_comparison"]

Key = tuple[str, str, int]


def load_reports(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, report)`` for each saved report; the name says which client or file it was."""
    if len(paths) < 2:
        raise ValueError("compare needs at least two reports")
    out = []
    for path in paths:
        with open(path) as f:
            try:
                report = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not a JSON report ({exc})") from exc
        if not isinstance(report, dict) or not isinstance(report.get("results"), list):
            raise ValueError(f"{path}: not an aioaccess bench report (no results)")
        name = os.path.basename(path)
        if report.get("client"):
            name = f"{name} ({report['client']})"
        out.append((name, report))
    return out


def _ratio(a: float, b: float) -> float | None:
    return b / a if a else None


def compare(reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The comparison as data: the reports' names and one entry per row of the first report."""
    base_name, base = reports[0]
    indexed = [{(r["op"], r["phase"], r["concurrency"]): r for r in report["results"]} for _, report in reports]
    rows = []
    for row in base["results"]:
        key: Key = (row["op"], row["phase"], row["concurrency"])
        entry: dict[str, Any] = {"op": key[0], "phase": key[1], "concurrency": key[2],
                                 "ops_per_s": [], "ratios": []}
        for other in indexed:
            match = other.get(key)
            entry["ops_per_s"].append(match["ops_per_s"] if match else None)
            entry["ratios"].append(None if match is None else {
                "ops_per_s": _ratio(row["ops_per_s"], match["ops_per_s"]),
                "p50": _ratio(row["latency_ms"]["p50"], match["latency_ms"]["p50"]),
                "p99": _ratio(row["latency_ms"]["p99"], match["latency_ms"]["p99"]),
                "cpu_per_op": _ratio(row["cpu_s_per_1000_ops"], match["cpu_s_per_1000_ops"]),
            })
        rows.append(entry)
    return {"base": base_name, "names": [name for name, _ in reports], "rows": rows}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_comparison(result: dict[str, Any], file: IO[str] | None = None) -> None:
    """The comparison as a rich table (plain text when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    if not console.is_terminal:
        console = Console(file=file, width=200)
    table = Table(title=f"ratios to {result['base']}", title_justify="left")
    table.add_column("op")
    table.add_column("conc", justify="right")
    table.add_column(f"ops/s {result['names'][0]}", justify="right")
    for name in result["names"][1:]:
        for col in (f"ops/s {name}", "x ops/s", "x p50", "x p99", "x CPU/op"):
            table.add_column(col, justify="right")
    for row in result["rows"]:
        op = row["op"] if row["phase"] == row["op"] else f"{row['op']} ({row['phase']})"
        cells = [op, str(row["concurrency"]), _fmt(row["ops_per_s"][0], ",.1f")]
        for ops, ratios in zip(row["ops_per_s"][1:], row["ratios"][1:], strict=True):
            r = ratios or {}
            cells += [_fmt(ops, ",.1f"), _fmt(r.get("ops_per_s"), ".2f"), _fmt(r.get("p50"), ".2f"),
                      _fmt(r.get("p99"), ".2f"), _fmt(r.get("cpu_per_op"), ".2f")]
        table.add_row(*cells)
    console.print(table)
