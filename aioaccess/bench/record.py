"""Raw records of one phase: one entry per op, per worker and per CPU sample, mergeable across processes.

Times are ``time.perf_counter()`` readings (CLOCK_MONOTONIC on Linux, one
clock for every process of the machine), so the records of ``--procs``
worker processes merge into one exact timeline.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

__all__ = ["Records"]


@dataclass
class Records:
    """What happened in one phase: ``ops[i]`` was scheduled at ``scheduled[i]``, ran ``started[i]``-``ended[i]``.

    ``first_byte[i]`` is when the first byte of the answer arrived (0.0:
    not measured); ``moved[i]`` the payload bytes; ``errors`` maps the index
    of each failed op to its error kind.  ``workers`` holds each worker's
    (first start, last end); ``cpu`` each process's (time, CPU seconds of
    the process, CPU seconds of its event-loop thread) samples.
    """

    names: list[str]
    op: array = field(default_factory=lambda: array("B"))
    scheduled: array = field(default_factory=lambda: array("d"))
    started: array = field(default_factory=lambda: array("d"))
    first_byte: array = field(default_factory=lambda: array("d"))
    ended: array = field(default_factory=lambda: array("d"))
    moved: array = field(default_factory=lambda: array("q"))
    errors: dict[int, str] = field(default_factory=dict)
    workers: list[tuple[float, float]] = field(default_factory=list)
    cpu: list[list[tuple[float, float, float]]] = field(default_factory=list)
    rate: float | None = None  # ops/s scheduled (open loop), None for closed loop
    procs: int = 1

    def add(self, op: int, scheduled: float, started: float, first_byte: float, ended: float, moved: int,
            error: str | None) -> None:
        self.op.append(op)
        self.scheduled.append(scheduled)
        self.started.append(started)
        self.first_byte.append(first_byte)
        self.ended.append(ended)
        self.moved.append(moved)
        if error is not None:
            self.errors[len(self.op) - 1] = error

    def __len__(self) -> int:
        return len(self.op)

    @classmethod
    def merge(cls, parts: list[Records]) -> Records:
        """One ``Records`` holding every part (same op names, in the same order)."""
        if not parts:
            raise ValueError("nothing to merge")
        names = parts[0].names
        out = cls(list(names), rate=None if parts[0].rate is None else sum(p.rate or 0.0 for p in parts),
                  procs=sum(p.procs for p in parts))
        for part in parts:
            if part.names != names:
                raise ValueError(f"op names differ: {part.names} != {names}")
            offset = len(out)
            for name in ("op", "scheduled", "started", "first_byte", "ended", "moved"):
                getattr(out, name).extend(getattr(part, name))
            out.errors.update((offset + i, kind) for i, kind in part.errors.items())
            out.workers.extend(part.workers)
            out.cpu.extend(part.cpu)
        return out
