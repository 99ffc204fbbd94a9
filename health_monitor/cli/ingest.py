"""``health-monitor ingest``: load CSV, JSON-lines or Parquet exports into the lakehouse."""

from __future__ import annotations

import argparse

from health_monitor.gold.ingest import FORMATS, IngestReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="load CSV, JSON-lines or Parquet exports of system or Gold tables",
        description="Load exports of system tables (system.billing.usage or billing.usage) or Gold "
        "tables (fact_usage) from files or folders, all in one Spark session. Without --table each "
        "file's table comes from its name (system.billing.usage.jsonl, or a folder named after the "
        "table). Columns and types are checked against the table's contract; rows that fail go to "
        "monitor.quarantine with the reason, the rest land. Re-ingesting the same file adds nothing.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="files or folders of files (hidden and _-prefixed files are skipped)")
    p.add_argument("--table", metavar="NAME",
                   help="target table for every file, e.g. system.billing.usage, access.audit or fact_usage "
                   "(default: from each file's name)")
    p.add_argument("--format", choices=list(FORMATS), dest="file_format",
                   help="file format (default: from each file's extension)")
    p.add_argument("--encoding", help="text encoding of CSV and JSON files (default UTF-8), e.g. cp1252 or latin-1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    from health_monitor.gold.ingest import ingest_paths

    reports = ingest_paths(ctx.lake, args.paths, args.table, file_format=args.file_format,
                           encoding=args.encoding)
    for report in reports:
        print(format_report(report))
    if len(reports) > 1:
        print(summary_table(reports))
    steps = dict.fromkeys(r.next_step for r in reports if r.next_step)
    for step in steps:
        print(f"next: {step}")
    return 0


def summary_table(reports: list[IngestReport]) -> str:
    """One line per table: rows read, kept, quarantined, duplicates skipped; then the totals."""
    header = ("table", "files", "read", "kept", "quarantined", "duplicates")
    rows = [(r.qualified_table, str(len(r.files)), f"{r.rows_read:,}", f"{r.ingested:,}", f"{r.quarantined:,}",
             f"{r.duplicates_skipped:,}") for r in reports]
    rows.append(("total", str(sum(len(r.files) for r in reports)), f"{sum(r.rows_read for r in reports):,}",
                 f"{sum(r.ingested for r in reports):,}", f"{sum(r.quarantined for r in reports):,}",
                 f"{sum(r.duplicates_skipped for r in reports):,}"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(header), *(line(r) for r in rows)])


def format_report(report: IngestReport) -> str:
    """One table's summary: totals, one line per file (the next step is printed once by run)."""
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
    return "\n".join(lines)
