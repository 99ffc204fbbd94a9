"""Ingest, step 1: list the files, sniff them, and parse each into good rows and quarantine rows.

Files are parsed in Python (``csv``, ``json``, ``pyarrow``) rather than by Spark's readers so that
every rejected row keeps its exact line number and raw text. ``row_number`` is the line where the
row starts (the CSV header is line 1); for Parquet and JSON arrays it is the 1-based row index.

Why one module over 400 lines: one parser per format (CSV, JSON lines, JSON arrays, Parquet)
under the same line-number and quarantine contract, sharing the sniffing and error-row code.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from health_monitor.errors import HealthMonitorError
from health_monitor.gold.ddl import TableSpec
from health_monitor.gold.ingest.validate import _JSON, _decode_json, _RowValidator

if TYPE_CHECKING:
    import pyarrow as pa


#: Extensions per format; ``.gz`` on top of a text format is read through gzip.
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".tsv"),
    "json": (".jsonl", ".json", ".ndjson"),
    "parquet": (".parquet", ".pq"),
}

_BATCH_ROWS = 50_000  # good rows per Arrow batch: bounds the Python objects alive at once
_RAW_TEXT_MAX = 10_000  # a runaway quoted field can swallow a whole file; keep quarantine rows small
_SNIFF_BYTES = 8192
_MAGIC = [
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
    (b"PAR1", "a Parquet file"), (b"\x1f\x8b", "a gzip archive"),
]

csv.field_size_limit(64 * 1024 * 1024)  # statement_text and request_params cells can be large


# --------------------------------------------------------------------------- reports
@dataclass
class FileReport:
    """What happened to one file.

    Attributes:
        path: the file.
        format: ``csv``, ``json`` or ``parquet``.
        status: ``ingested``, ``already ingested`` (same bytes seen before for this table) or ``empty``.
        rows_read: data rows (or JSON lines) read, blank lines excluded.
        ingested: rows added to the table.
        quarantined: rows written to ``monitor.quarantine``.
        duplicates_skipped: rows whose primary key already existed or repeated an earlier row.
        extra_columns: columns in the file that the contract does not have (ignored).
        missing_optional_columns: nullable contract columns absent from the file (left null).
        samples: up to five ``(row_number, reason)`` of quarantined rows, for the summary.
        message: a note for the user (why a file was skipped).
        content_hash: sha256 of the file's bytes.
    """

    path: str
    format: str
    status: str = "ingested"
    rows_read: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates_skipped: int = 0
    extra_columns: list[str] = field(default_factory=list)
    missing_optional_columns: list[str] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)
    message: str = ""
    content_hash: str = ""


# --------------------------------------------------------------------------- files
@dataclass
class _Parsed:
    """Result of parsing one file: good rows as Arrow batches, quarantine rows, counts."""

    report: FileReport
    batches: list[pa.RecordBatch] = field(default_factory=list)
    quarantine: list[tuple[int, str, str]] = field(default_factory=list)  # (row_number, raw, reason)
    good: int = 0


def _list_files(path: Path, fmt: str | None) -> list[tuple[Path, str]]:
    """The files to ingest with their formats: the file itself, or a folder's data files."""
    if not path.exists():
        raise HealthMonitorError(f"{path} does not exist")
    if path.is_file():
        detected = _format_of(path)
        if fmt is None and detected is None:
            raise HealthMonitorError(
                f"cannot tell the format of {path.name} from its extension: pass --format csv, json or parquet")
        return [(path, fmt or detected)]  # type: ignore[list-item]
    files: list[tuple[Path, str]] = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        # Spark and Hadoop leave _SUCCESS, _delta_log and .crc files beside the data.
        if not p.is_file() or any(part.startswith((".", "_")) for part in rel.parts):
            continue
        detected = _format_of(p)
        if fmt is None and detected is not None:
            files.append((p, detected))
        elif fmt is not None and detected in (fmt, None):
            files.append((p, fmt))
    if not files:
        wanted = fmt or "csv, json or parquet"
        raise HealthMonitorError(f"{path} has no {wanted} files to ingest")
    return files


def _format_of(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    for fmt, exts in FORMATS.items():
        if name.endswith(exts):
            return fmt
    return None


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_bytes(path: Path) -> io.BufferedIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _sniff_text(path: Path, fmt: str) -> bytes:
    """Reject a binary file posing as text (a PNG named .csv) before parsing it line by line."""
    label = "CSV" if fmt == "csv" else "JSON-lines"
    try:
        with _open_bytes(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise HealthMonitorError(f"{path.name} cannot be read as {label}: {exc}") from None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise HealthMonitorError(f"{path.name} is not a {label} file: it looks like {what}")
    # A stray NUL in one row is that row's problem (it is quarantined); many of them mean binary
    # data, or UTF-16 text, and the file is refused whole.
    if head.count(b"\x00") > max(8, len(head) // 100):
        hint = " (UTF-16 text? re-export it as UTF-8)" if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:2] == b"\x00" else ""
        raise HealthMonitorError(f"{path.name} is not a {label} file: it contains binary data{hint}")
    return head


def _text_lines(path: Path, fmt: str, encoding: str | None = None) -> Iterator[str]:
    """Lines of a text file, UTF-8 unless ``encoding`` says otherwise (a BOM is dropped);
    undecodable bytes are a one-line error that names the byte and the ``--encoding`` to try."""
    label = "CSV" if fmt == "csv" else "JSON-lines"
    with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding=encoding or "utf-8-sig", newline="") as fh:
        try:
            yield from fh
        except UnicodeDecodeError as exc:
            byte = exc.object[exc.start:exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
            raise HealthMonitorError(
                f"{path.name} is not a {encoding or 'UTF-8'} {label} file (byte 0x{byte} cannot be decoded): "
                "pass --encoding cp1252 (Windows/Excel) or --encoding latin-1, or re-export it as UTF-8"
            ) from None
        except (OSError, EOFError) as exc:
            raise HealthMonitorError(f"{path.name} cannot be read: {exc}") from None


class _FileParser:
    """Turns one file into good rows (Arrow batches) and quarantine rows for one table."""

    def __init__(self, spec: TableSpec, validator: _RowValidator, arrow_schema: pa.Schema,
                 seen: set[tuple], file_index: int, path: Path, fmt: str, encoding: str | None = None) -> None:
        self.encoding = encoding
        self.spec, self.v, self.arrow_schema = spec, validator, arrow_schema
        self.seen, self.file_index, self.path = seen, file_index, path
        self.out = _Parsed(FileReport(path=str(path), format=fmt))
        self.rows: list[list[Any]] = []

    # ---- shared bookkeeping
    def _columns(self, header: list[str]) -> list[int | None]:
        """Map file columns to contract positions; report extra and missing ones."""
        norm = [h.strip().strip('"').lower() for h in header]
        dupes = sorted({h for h in norm if norm.count(h) > 1 and h})
        if dupes:
            raise HealthMonitorError(f"{self.path.name} has duplicate column(s) {', '.join(dupes)}")
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        mapping = [lookup.get(h) for h in norm]
        present = {self.v.names[i] for i in mapping if i is not None}
        self._check_required(present)
        rep = self.out.report
        rep.extra_columns = [h for h, i in zip(header, mapping, strict=True) if i is None and h.strip()]
        rep.missing_optional_columns = [n for n in self.v.names if n not in present]
        return mapping

    def _check_required(self, present: set[str]) -> None:
        missing = [n for n in self.v.required if n not in present]
        if missing:
            raise HealthMonitorError(
                f"{self.path.name} is missing required column(s) {', '.join(missing)} for {self.spec.name}")

    def _row(self, row_number: int, raw: Callable[[], str], cells: list[Any]) -> None:
        self.out.report.rows_read += 1
        vals, reason = self.v.check(cells)
        if reason is not None:
            self._quarantine(row_number, raw(), reason)
            return
        key = self.v.key(vals)  # type: ignore[arg-type]
        if key in self.seen:
            self.out.report.duplicates_skipped += 1
            return
        self.seen.add(key)
        vals.append(self.file_index)  # type: ignore[union-attr]
        self.rows.append(vals)  # type: ignore[arg-type]
        if len(self.rows) >= _BATCH_ROWS:
            self._flush()

    def _quarantine(self, row_number: int, raw: str, reason: str) -> None:
        if len(raw) > _RAW_TEXT_MAX:
            raw = raw[:_RAW_TEXT_MAX] + f"... [{len(raw) - _RAW_TEXT_MAX} more characters]"
        self.out.quarantine.append((row_number, raw, reason))
        if len(self.out.report.samples) < 5:
            self.out.report.samples.append((row_number, reason))

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, self.arrow_schema, strict=True)]
        self.out.batches.append(pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema))
        self.out.good += len(self.rows)
        self.rows = []

    def finish(self) -> _Parsed:
        self._flush()
        rep = self.out.report
        rep.quarantined = len(self.out.quarantine)
        if rep.rows_read == 0:
            rep.status, rep.message = "empty", "no data rows"
        return self.out

    # ---- formats
    def parse(self) -> _Parsed:
        fmt = self.out.report.format
        if fmt == "csv":
            self._parse_csv()
        elif fmt == "json":
            self._parse_json()
        else:
            self._parse_parquet()
        return self.finish()

    def _parse_csv(self) -> None:
        head = _sniff_text(self.path, "csv")
        first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
        delimiter = "\t" if self.path.name.lower().removesuffix(".gz").endswith(".tsv") else max(
            ",;\t|", key=first_line.count)
        consumed: list[tuple[int, str]] = []
        # Lines handed back after a runaway quote: read again, on their own, before the file's next.
        pushback: deque[tuple[int, str]] = deque()
        line_no = 0

        source = enumerate(_text_lines(self.path, "csv", self.encoding), start=1)

        def lines() -> Iterator[str]:
            nonlocal line_no
            while True:
                if pushback:
                    line_no, line = pushback.popleft()
                else:
                    try:
                        line_no, line = next(source)
                    except StopIteration:
                        return
                consumed.append((line_no, line))
                yield line

        # Spark's CSV writer (df.write.csv, the usual export on Databricks) escapes quotes as \" where
        # RFC 4180 tools double them; accept the backslash form only when the file uses it, so
        # backslashes in other files (Windows paths, regexes) stay literal.
        escape = "\\" if b'\\"' in head else None
        reader = csv.reader(lines(), delimiter=delimiter, escapechar=escape)
        mapping: list[int | None] | None = None
        width = len(self.v.names)
        start = 1
        while True:
            try:
                record = next(reader)
                error = None
            except StopIteration:
                break
            except csv.Error as exc:
                record, error = None, str(exc)
            taken = list(consumed)
            raw = "".join(line for _, line in taken).rstrip("\r\n")
            consumed.clear()
            row_number = taken[0][0] if taken else start
            start = line_no + 1
            runaway = mapping is not None and len(taken) > 1 and (
                error is not None or (record is not None and len(record) != len(mapping)))
            if runaway:
                # A quote opened in one line and never closed there swallowed the lines after it:
                # quarantine that line alone and read the others again, so their rows are not lost.
                self.out.report.rows_read += 1
                self._quarantine(row_number, taken[0][1].rstrip("\r\n"),
                                 "malformed CSV: unbalanced quote (the lines after it are read on their own)")
                pushback.extendleft(reversed(taken[1:]))
                reader = csv.reader(lines(), delimiter=delimiter, escapechar=escape)
                continue
            if error is not None:
                if mapping is None:
                    raise HealthMonitorError(f"{self.path.name}: malformed CSV header: {error}")
                self.out.report.rows_read += 1
                self._quarantine(row_number, raw, f"malformed CSV: {error}")
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if mapping is None:
                mapping = self._columns(record)
                continue
            if len(record) != len(mapping):
                self.out.report.rows_read += 1
                self._quarantine(row_number, raw,
                                 f"malformed CSV: row has {len(record)} fields, the header has {len(mapping)}")
                continue
            cells: list[Any] = [None] * width
            for value, i in zip(record, mapping, strict=True):
                if i is not None and value != "":
                    cells[i] = value
            self._row(row_number, lambda raw=raw: raw, cells)

    def _parse_json(self) -> None:
        head = _sniff_text(self.path, "json")
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[") and self._parse_json_array():
            return
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        width = len(self.v.names)
        present: set[str] = set()
        extra: dict[str, None] = {}
        parsed_any, first_error = False, ""
        for line_no, line in enumerate(_text_lines(self.path, "json", self.encoding), start=1):
            text = line.strip()
            if not text:
                continue
            raw = line.rstrip("\r\n")
            try:
                obj = _decode_json(text)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                first_error = first_error or f"line {line_no}: {msg}"
                self.out.report.rows_read += 1
                self._quarantine(line_no, raw, f"malformed JSON: {msg} at column {getattr(exc, 'colno', '?')}")
                continue
            parsed_any = True
            if not isinstance(obj, dict):
                self.out.report.rows_read += 1
                self._quarantine(line_no, raw, f"malformed JSON: a line must be one object, got {type(obj).__name__}")
                continue
            cells = self._cells_from_object(obj, lookup, width, present, extra)
            self._row(line_no, lambda raw=raw: raw, cells)
        if not parsed_any and first_error:
            raise HealthMonitorError(f"{self.path.name} is not a JSON-lines file ({first_error})")
        self._finish_keyed(present, extra)

    def _parse_json_array(self) -> bool:
        """A file holding one JSON array of objects (what many tools call 'JSON export').

        Returns False, having read nothing, when the array is followed by more values: the file
        is JSON lines whose first line happens to be an array (that line is quarantined then).
        """
        try:
            data = _JSON.decode("".join(_text_lines(self.path, "json", self.encoding)))
        except ValueError as exc:
            if getattr(exc, "msg", "") == "Extra data":
                return False
            raise HealthMonitorError(f"{self.path.name} is not valid JSON: {getattr(exc, 'msg', exc)} "
                                     f"at line {getattr(exc, 'lineno', '?')}") from None
        lookup = {n.lower(): i for i, n in enumerate(self.v.names)}
        present: set[str] = set()
        extra: dict[str, None] = {}
        for n, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                self.out.report.rows_read += 1
                self._quarantine(n, _dump(obj), f"malformed JSON: element must be an object, got {type(obj).__name__}")
                continue
            cells = self._cells_from_object(obj, lookup, len(self.v.names), present, extra)
            self._row(n, lambda obj=obj: _dump(obj), cells)
        self._finish_keyed(present, extra)
        return True

    def _cells_from_object(self, obj: dict, lookup: dict[str, int], width: int,
                           present: set[str], extra: dict[str, None]) -> list[Any]:
        cells: list[Any] = [None] * width
        for k, v in obj.items():
            i = lookup.get(k) if k in lookup else lookup.get(str(k).strip().lower())
            if i is None:
                extra[k] = None
                continue
            present.add(self.v.names[i])
            cells[i] = v
        return cells

    def _finish_keyed(self, present: set[str], extra: dict[str, None]) -> None:
        """JSON has no header: a required column absent from every object is a file-level error."""
        if self.out.report.rows_read and present:
            self._check_required(present)
        rep = self.out.report
        rep.extra_columns = list(extra)
        rep.missing_optional_columns = [n for n in self.v.names if n not in present]

    def _parse_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self.path.open("rb") as fh:
            head = fh.read(8)
        if not head.startswith(b"PAR1"):
            what = next((w for m, w in _MAGIC if head.startswith(m)), "")
            raise HealthMonitorError(f"{self.path.name} is not a Parquet file"
                                     + (f": it looks like {what}" if what else " (no PAR1 header)"))
        try:
            pf = pq.ParquetFile(self.path)
            header = pf.schema_arrow.names
        except (pa.ArrowException, OSError) as exc:
            raise HealthMonitorError(f"{self.path.name} is not a readable Parquet file: "
                                     f"{str(exc).splitlines()[0]}") from None
        mapping = self._columns(header)
        position = {h: i for h, i in zip(header, mapping, strict=True) if i is not None}
        width = len(self.v.names)
        row_number = 0
        try:
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=list(position)):
                names = batch.schema.names
                positions = [position[n] for n in names]
                for obj in batch.to_pylist():
                    row_number += 1
                    cells: list[Any] = [None] * width
                    for n, i in zip(names, positions, strict=True):
                        cells[i] = obj[n]
                    self._row(row_number, lambda obj=obj: _dump(obj), cells)
        except (pa.ArrowException, OSError) as exc:
            raise HealthMonitorError(f"{self.path.name} is a corrupt Parquet file (after row {row_number}): "
                                     f"{str(exc).splitlines()[0]}") from None


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False)
