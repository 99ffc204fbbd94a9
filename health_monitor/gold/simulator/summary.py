"""The summary a simulation returns (its own module: run.py and live.py both build one, and
live.py must not import run.py, which starts live runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SimulationSummary:
    """What a simulation wrote: rows per table (``layer.table``), incidents by type, wall seconds."""

    rows: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    start: datetime | None = None
    end: datetime | None = None

    def lines(self) -> list[str]:
        """A printable summary."""
        out = [f"estate {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC, {self.seconds:.1f}s"]
        width = max((len(k) for k in self.rows), default=10)
        out += [f"  {k:<{width}}  {v:>10,}" for k, v in sorted(self.rows.items())]
        out.append(f"incidents: {sum(self.incidents.values())} of {len(self.incidents)} types")
        out += [f"  {k:<28} {v:>4}" for k, v in sorted(self.incidents.items())]
        return out
