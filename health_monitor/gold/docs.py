"""Generate ``docs/gold-schema.md`` from the table contracts (``python -m health_monitor.gold.docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.ingest import INGEST_LOG
from health_monitor.gold.schemas import GOLD_TABLES, GROUND_TRUTH, QUARANTINE
from health_monitor.gold.system_schemas import SYSTEM_TABLES


def _section(spec: TableSpec) -> list[str]:
    lines = [f"### `{spec.name}`", "", spec.description, ""]
    facts = [f"primary key: `{', '.join(spec.primary_key)}`"]
    if spec.event_time:
        facts.append(f"event time: `{spec.event_time}`")
    if spec.scd2:
        facts.append("SCD2 (`effective_from`, `effective_to`, `is_current`)")
    if spec.partition_by:
        facts.append(f"partitioned by `{', '.join(spec.partition_by)}`")
    lines += ["; ".join(facts), "", "| column | type | null | notes |", "|---|---|---|---|"]
    for c in spec.columns:
        typ = c.type.replace("|", "\\|")
        note = c.comment.replace("|", "\\|")
        lines.append(f"| `{c.name}` | `{typ}` | {'yes' if c.nullable else 'no'} | {note} |")
    return [*lines, ""]


def render() -> str:
    out = [
        "# Gold layer schema",
        "",
        "Generated from `health_monitor/gold/schemas.py` and `system_schemas.py` by "
        "`make docs`; do not edit by hand.",
        "",
        "## Gold tables",
        "",
    ]
    for spec in GOLD_TABLES.values():
        out += _section(spec)
    out += ["## Monitor and simulator tables", ""]
    for spec in (QUARANTINE, INGEST_LOG, GROUND_TRUTH):
        out += _section(spec)
    out += ["## System-table sources", "",
            "Shapes read from `system.*` on Databricks and from the local `system` layer otherwise.", ""]
    for spec in SYSTEM_TABLES.values():
        out += _section(spec)
    return "\n".join(out)


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/gold-schema.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
