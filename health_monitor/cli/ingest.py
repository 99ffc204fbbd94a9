"""``health-monitor ingest``: load CSV, JSON-lines or Parquet exports into the lakehouse."""

from __future__ import annotations

import argparse

from health_monitor.gold.ingest import FORMATS, IngestReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="load CSV, JSON-lines or Parquet exports of a system or Gold table",
        description="Load exports of a system table (system.billing.usage or billing.usage) or a Gold "
        "table (fact_usage) from a file or a folder of files. Columns and types are checked against "
        "the table's contract; rows that fail go to monitor.quarantine with the reason, the rest land. "
        "Re-ingesting the same file adds nothing.",
    )
    p.add_argument("path", help="a file, or a folder of files (hidden and _-prefixed files are skipped)")
    p.add_argument("--table", required=True, metavar="NAME",
                   help="target table, e.g. system.billing.usage, access.audit or fact_usage")
    p.add_argument("--format", choices=list(FORMATS), dest="file_format",
                   help="file format (default: from each file's extension)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.gold.ingest import ingest

    report = ingest(ctx.lake, args.path, args.table, file_format=args.file_format)
    print(format_report(report))
    return 0


def format_report(report: IngestReport) -> str:
    """The summary the command prints: totals, one line per file, then what to do next."""
    lines = [
        f"{report.qualified_table}: {report.ingested:,} rows ingested, {report.quarantined:,} quarantined, "
        f"{report.duplicates_skipped:,} duplicates skipped ({len(report.files)} file(s), {report.rows_read:,} rows read)"
    ]
    for f in report.files:
        if f.status != "ingested":
            lines.append(f"  {f.path}: {f.status}: {f.message}, nothing ingested")
            continue
        lines.append(f"  {f.path}: {f.rows_read:,} read, {f.ingested:,} ingested, {f.quarantined:,} quarantined, "
                     f"{f.duplicates_skipped:,} duplicates skipped")
        if f.extra_columns:
            lines.append(f"    ignored extra column(s): {', '.join(f.extra_columns)}")
        for row, reason in f.samples:
            lines.append(f"    quarantined row {row}: {reason}")
        if f.quarantined > len(f.samples):
            lines.append(f"    ... {f.quarantined - len(f.samples):,} more in monitor.quarantine")
    if report.next_step:
        lines.append(f"next: {report.next_step}")
    return "\n".join(lines)
