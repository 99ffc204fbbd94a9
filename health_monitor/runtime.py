"""The SparkSession and the lakehouse: where every table lives and how it is read and written.

Locally the lakehouse is a folder of path-based Delta tables (no Hive metastore, so separate
processes see the same tables without sharing a Derby lock). On Databricks the same calls
resolve to Unity Catalog names. This module is the only place that knows the difference.

Why one module over 400 lines: it is the one place that knows local vs Databricks vs Spark
Connect (session, Delta I/O, table names); the Connect-safety test relies on JVM access living
only here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from health_monitor.errors import HealthMonitorError, TableBusyError
from health_monitor.settings import LAYERS, Settings, load_settings, running_on_databricks

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import DataStreamWriter, StreamingQuery
    from pyspark.sql.types import StructType

JAVA_HINT = (
    "Java 17 or 21 is required to run Spark but none was found: install it "
    "(Debian/Ubuntu: 'apt-get install openjdk-17-jre-headless'; macOS: 'brew install openjdk@17') "
    "or set JAVA_HOME."
)

#: Flags for a short-lived bulk job (``simulate``): thousands of small Spark queries, each with
#: freshly generated code, where the optimising C2 compiler spends more CPU compiling than its
#: code saves (C1 only: the default simulation took 186 CPU s instead of 257). C1 alone gets a
#: 48 MB code cache, which Spark fills within minutes (then the JVM runs interpreted): hence
#: 256 MB. The throughput collector costs less CPU than G1's concurrent work on a small heap.
SHORT_LIVED_JVM_OPTIONS = "-XX:+UseParallelGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
#: Flags of the local driver (``HEALTH_MONITOR_JVM_OPTIONS`` replaces them): the same. A stream is
#: no different: every micro-batch plans ~18 queries and compiles 17-36 new generated classes
#: (watermarks and per-batch literals change the code), so C2 never settles; it was half the JVM's
#: CPU of a security stream (24.5 of 55.0 CPU-s over 4 batches, C1 4.7) and C1 alone cut the JVM's
#: CPU by 40% (docs/benchmarks.md, session 10 onescan), its slower code included. Against it: a
#: Gold-heavy test (tests/test_budget.py) ran 9% longer in wall time on C1 (98 -> 107 s).
JVM_OPTIONS = SHORT_LIVED_JVM_OPTIONS

#: Compiled generated code kept by its source text (``spark.sql.codegen.cache.maxEntries``, a static
#: conf; ``HEALTH_MONITOR_CODEGEN_CACHE`` replaces it). A micro-batch plans ~18 queries (the stateful
#: plan, Delta's snapshot and write jobs, the sink's reads and writes): more generated classes than
#: Spark's default of 100 entries hold, so every batch compiled the same code again with Janino and
#: the JIT compiled the new classes again. A few thousand classes are tens of MB of metaspace.
CODEGEN_CACHE_ENTRIES = "2000"

_SPARK: SparkSession | None = None
_SPARK_LOCK = threading.Lock()


def check_java() -> str:
    """Return the java executable Spark will use, or raise a one-line error saying how to get one."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise HealthMonitorError(JAVA_HINT)
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HealthMonitorError(f"{JAVA_HINT} ({exc})") from None
    text = out.stderr + out.stdout
    # 'openjdk version "17.0.15"' / 'java version "21.0.1"' / '"1.8.0_392"'
    version = text.split('"')[1] if '"' in text else ""
    major = version.split(".")[1] if version.startswith("1.") else version.split(".")[0]
    if not major.isdigit() or int(major) < 17:
        raise HealthMonitorError(f"Spark 4 needs Java 17 or 21, found '{version or text.strip()}'. {JAVA_HINT}")
    return java


def get_spark(settings: Settings | None = None, *, short_lived: bool = False) -> SparkSession:
    """The one SparkSession of this process.

    On Databricks: the active session. Locally: a Delta-enabled ``local[N]`` session tuned for a
    small machine (few shuffle partitions, no UI, quiet logs, UTC). Created once, then reused.
    ``short_lived`` picks the JIT flags of a short bulk job (:data:`SHORT_LIVED_JVM_OPTIONS`, today
    also :data:`JVM_OPTIONS`) when this call starts the JVM; it changes nothing once the session exists.
    """
    global _SPARK
    settings = settings or load_settings()
    with _SPARK_LOCK:
        if _SPARK is not None and _is_alive(_SPARK):
            return _SPARK
        from pyspark.sql import SparkSession

        if settings.is_databricks:
            _SPARK = SparkSession.builder.getOrCreate()
            return _SPARK
        remote = spark_remote()
        if remote:
            # Spark Connect (a local server in CI, or Databricks Connect's URL): the server owns
            # Delta and the confs; the client only connects.
            _SPARK = SparkSession.builder.remote(remote).getOrCreate()
            return _SPARK
        check_java()
        # Python workers (pandas UDFs) must run this interpreter, not whatever `python3` is on
        # PATH, or they miss pandas/pyarrow when the CLI runs from a venv without activating it.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        from delta import configure_spark_with_delta_pip

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        master = os.environ.get("HEALTH_MONITOR_SPARK_MASTER", "local[2]")
        builder = (
            SparkSession.builder.master(master)
            .appName("health-monitor")
            .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
            .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
            # Path-based tables only: an in-memory catalog avoids Derby's one-process lock.
            .config("spark.sql.catalogImplementation", "in-memory")
            .config("spark.sql.warehouse.dir", str(settings.data_dir / "warehouse"))
            .config("spark.sql.shuffle.partitions", os.environ.get("HEALTH_MONITOR_SHUFFLE_PARTITIONS", "4"))
            .config("spark.default.parallelism", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", os.environ.get("HEALTH_MONITOR_DRIVER_MEMORY", "3g"))
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.execution.arrow.pyspark.fallback.enabled", "true")
            .config("spark.databricks.delta.snapshotPartitions", "2")
            .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
            .config("spark.sql.codegen.cache.maxEntries", os.environ.get("HEALTH_MONITOR_CODEGEN_CACHE", CODEGEN_CACHE_ENTRIES))
            .config("spark.sql.streaming.stateStore.providerClass",
                    "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
            .config("spark.driver.extraJavaOptions",
                    f"-Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties')} "
                    f"-Dderby.stream.error.file=/dev/null {os.environ.get('HEALTH_MONITOR_JVM_OPTIONS', SHORT_LIVED_JVM_OPTIONS if short_lived else JVM_OPTIONS)}")
        )
        extra_jars = os.environ.get("HEALTH_MONITOR_SPARK_JARS") or _cached_delta_jars()
        if extra_jars:
            # Fallback when Ivy cannot resolve Delta: jars fetched with `mvn dependency:copy`.
            builder = builder.config("spark.jars", extra_jars)
            _SPARK = builder.getOrCreate()
        else:
            _SPARK = configure_spark_with_delta_pip(builder).getOrCreate()
        _SPARK.sparkContext.setLogLevel("ERROR")
        return _SPARK


#: Spark 4.0 gives the Python worker of a Connect ``foreachBatch`` function a fixed 10 seconds to
#: start and connect back (``PythonWorkerFactory.createSimpleWorker``; no setting changes it). On
#: a loaded machine importing pandas and pyarrow can take longer: the query never started, so
#: starting it again is safe.
_WORKER_START_ERROR = "Python worker failed to connect back"


def start_query(writer: DataStreamWriter, attempts: int = 5) -> StreamingQuery:
    """``writer.start()``, retried when a Connect server's foreachBatch worker started too slowly."""
    for attempt in range(1, attempts + 1):
        try:
            return writer.start()
        except Exception as exc:  # noqa: BLE001 - only the worker start-up timeout is retried
            if _WORKER_START_ERROR not in str(exc) or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def spark_remote() -> str | None:
    """The Spark Connect URL to use instead of a local JVM (``HEALTH_MONITOR_SPARK_REMOTE``), if any."""
    return os.environ.get("HEALTH_MONITOR_SPARK_REMOTE") or None


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (serverless, standard access mode, a Connect server)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _is_alive(spark: SparkSession) -> bool:
    """Whether a cached session can still run queries (only the classic session reaches the JVM)."""
    if is_connect(spark):
        return not spark._client.is_closed  # type: ignore[attr-defined]
    return not spark.sparkContext._jsc.sc().isStopped()  # type: ignore[union-attr]


def _cached_delta_jars() -> str | None:
    """Delta's jars from the local Ivy cache, once an earlier session resolved them.

    Passing them as ``spark.jars`` skips Ivy's resolution (a few seconds and a screen of
    resolver output on every command); the first run on a machine still resolves through
    ``spark.jars.packages`` from Maven Central.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        delta = version("delta-spark")
    except PackageNotFoundError:
        return None
    for jars in sorted(Path.home().glob(".ivy2*/jars"), reverse=True):
        spark_jar = jars / f"io.delta_delta-spark_2.13-{delta}.jar"
        storage_jar = jars / f"io.delta_delta-storage-{delta}.jar"
        antlr = sorted(jars.glob("org.antlr_antlr4-runtime-4.*.jar"))
        if spark_jar.is_file() and storage_jar.is_file() and antlr:
            return ",".join(str(j) for j in (spark_jar, storage_jar, antlr[-1]))
    return None


def stop_spark() -> None:
    """Stop the process's session (tests and the CLI call this on exit)."""
    global _SPARK
    with _SPARK_LOCK:
        # Databricks owns its session (stopping it breaks the job's other tasks), and a Connect
        # server outlives its clients: only a local JVM of ours is stopped.
        if _SPARK is not None and not is_connect(_SPARK) and not running_on_databricks():
            _SPARK.stop()
        _SPARK = None


# Process-wide registry of writer locks: a flock is per open file, so re-entrant use inside one
# process must share the descriptor instead of blocking on itself.
_HELD_LOCKS: dict[str, tuple[int, int]] = {}
_HELD_LOCKS_GUARD = threading.Lock()


class Lakehouse:
    """Names, reads and writes the monitor's tables in either environment.

    ``layer`` is one of :data:`health_monitor.settings.LAYERS`; ``table`` is a bare table name
    (``fact_usage``) or, for the ``system`` layer, the system table's ``schema.table``
    (``billing.usage``).
    """

    def __init__(self, settings: Settings | None = None, spark: SparkSession | None = None) -> None:
        self.settings = settings or load_settings()
        self._spark = spark

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = get_spark(self.settings)
        return self._spark

    # ------------------------------------------------------------------ naming
    def location(self, table: str, layer: str = "gold") -> Path:
        """Folder of a local Delta table (local mode only)."""
        _check_layer(layer)
        return self.settings.lake_dir / layer / table

    def table_name(self, table: str, layer: str = "gold") -> str:
        """An identifier usable in Spark SQL: ``catalog.schema.table`` or ``delta.`/path```."""
        _check_layer(layer)
        s = self.settings
        if s.is_databricks:
            if layer == "system":
                return f"{s.system_catalog}.{table}"
            return f"{s.catalog}.{s.schemas[layer]}.{table}"
        return f"delta.`{self.location(table, layer)}`"

    # ------------------------------------------------------------------ reads
    def exists(self, table: str, layer: str = "gold") -> bool:
        if self.settings.is_databricks:
            return bool(self.spark.catalog.tableExists(self.table_name(table, layer)))
        return (self.location(table, layer) / "_delta_log").is_dir()

    def read(self, table: str, layer: str = "gold") -> DataFrame:
        """Batch read; a missing table is a one-line error naming the command that creates it."""
        if not self.exists(table, layer):
            raise HealthMonitorError(
                f"table {layer}.{table} does not exist in {self._where()}: "
                "run 'health-monitor simulate' or 'health-monitor ingest' first"
            )
        if self.settings.is_databricks:
            df = self.spark.read.table(self.table_name(table, layer))
        else:
            df = self.spark.read.format("delta").load(str(self.location(table, layer)))
        return _conform(df, table, layer)

    def read_stream(self, table: str, layer: str = "gold", **options: str) -> DataFrame:
        """Streaming read of a Delta table (``readStream``), with Delta source options."""
        if not self.exists(table, layer):
            raise HealthMonitorError(f"table {layer}.{table} does not exist in {self._where()}")
        reader = self.spark.readStream.format("delta").options(**options)
        if self.settings.is_databricks:
            return _conform(reader.table(self.table_name(table, layer)), table, layer)
        return _conform(reader.load(str(self.location(table, layer))), table, layer)

    def count(self, table: str, layer: str = "gold") -> int:
        return self.read(table, layer).count() if self.exists(table, layer) else 0

    def list_tables(self, layer: str | None = None) -> list[tuple[str, str]]:
        """(layer, table) pairs that exist locally (on Databricks: the layers' schemas)."""
        layers = [layer] if layer else list(LAYERS)
        found: list[tuple[str, str]] = []
        for lyr in layers:
            if self.settings.is_databricks:
                if lyr == "system":
                    continue
                schema = f"{self.settings.catalog}.{self.settings.schemas[lyr]}"
                try:
                    rows = self.spark.sql(f"SHOW TABLES IN {schema}").collect()
                except Exception:  # noqa: BLE001 - a schema that does not exist yet has no tables
                    continue
                found += [(lyr, r.tableName) for r in rows]
            else:
                root = self.settings.lake_dir / lyr
                if root.is_dir():
                    found += [(lyr, p.name) for p in sorted(root.iterdir()) if (p / "_delta_log").is_dir()]
        return found

    # ------------------------------------------------------------------ writes
    def ensure_table(self, table: str, schema: StructType, layer: str = "gold",
                     partition_by: list[str] | None = None) -> None:
        """Create an empty Delta table with ``schema`` if it does not exist yet."""
        if self.exists(table, layer):
            return
        empty = self.spark.createDataFrame([], schema)
        self.write(empty, table, layer, mode="append", partition_by=partition_by)

    def write(self, df: DataFrame, table: str, layer: str = "gold", mode: str = "append",
              partition_by: list[str] | None = None, options: dict[str, str] | None = None) -> None:
        """Append or overwrite a Delta table, holding the table's writer lock."""
        with self.writer_lock(table, layer):
            writer = df.write.format("delta").mode(mode).options(**(options or {}))
            if mode == "overwrite":
                writer = writer.option("overwriteSchema", "true")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            if self.settings.is_databricks:
                writer.saveAsTable(self.table_name(table, layer))
            else:
                writer.save(str(self.location(table, layer)))

    def write_arrow(self, data: pa.Table, table: str, layer: str = "gold",
                    options: dict[str, str] | None = None) -> None:
        """Replace a table with the rows of an Arrow table: a bulk load (a fresh simulated estate).

        Locally the Delta table is written straight from Arrow by delta-rs (``deltalake``): no
        JVM round trip, so the ~800k rows of the default estate cost seconds of CPU instead of
        minutes through Spark. The old table is dropped, not overwritten: a bulk load starts a new
        history, as a new estate does. On Databricks the rows go through Spark. ``options`` are
        Delta table properties (``delta.*``), as in :meth:`write`.
        """
        if self.settings.is_databricks:
            self.write(self.spark.createDataFrame(data), table, layer, mode="overwrite", options=options)
            return
        from deltalake import write_deltalake

        with self.writer_lock(table, layer):
            path = self.location(table, layer)
            shutil.rmtree(path, ignore_errors=True)
            write_deltalake(str(path), data, mode="overwrite", configuration=options or None)

    def latest_version(self, table: str, layer: str = "gold") -> int:
        """The table's newest Delta version (-1 while it has no commit)."""
        if not self.settings.is_databricks:
            # Locally the newest commit file names the version: a listing instead of a Spark job.
            log = self.location(table, layer) / "_delta_log"
            return max((int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()), default=-1)
        row = self.spark.sql(f"DESCRIBE HISTORY {self.table_name(table, layer)} LIMIT 1").first()
        return int(row["version"]) if row else -1

    def last_commit_rows(self, table: str, layer: str = "gold") -> int:
        """Rows written by the table's latest commit (Delta's ``numOutputRows`` metric).

        Lets a writer report what it wrote without computing its input twice (count, then write).
        """
        row = self.spark.sql(f"DESCRIBE HISTORY {self.table_name(table, layer)} LIMIT 1").first()
        metrics = (row["operationMetrics"] or {}) if row else {}
        return int(metrics.get("numOutputRows", 0))

    def merge(self, df: DataFrame, table: str, keys: list[str], layer: str = "gold",
              update: bool = True, partition_by: list[str] | None = None,
              target_filter: str | None = None) -> None:
        """Upsert ``df`` on ``keys`` (insert-only when ``update`` is False): reruns never duplicate.

        A table that does not exist yet is created from ``df``. ``target_filter`` (SQL on the
        target alias ``t``, e.g. ``t.usage_date IN (...)``) limits the target rows MERGE scans,
        so it can skip partitions the source cannot match.
        """
        from delta.tables import DeltaTable

        # Duplicate keys in the source would make MERGE fail (or double-insert): keep one.
        df = df.dropDuplicates(keys)
        with self.writer_lock(table, layer):
            if not self.exists(table, layer):
                self.write(df, table, layer, mode="append", partition_by=partition_by)
                return
            cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
            if target_filter:
                cond = f"({target_filter}) AND {cond}"
            if is_connect(self.spark) and not self.settings.is_databricks:
                # A plain Spark Connect server has Delta's SQL but not its Connect plugin
                # (DeltaTable over Connect): MERGE through SQL on a temporary view.
                view = f"_hm_merge_{table.replace('.', '_')}_{threading.get_ident()}"
                df.createOrReplaceTempView(view)
                matched = "WHEN MATCHED THEN UPDATE SET * " if update else ""
                self.spark.sql(f"MERGE INTO {self.table_name(table, layer)} t USING {view} s ON {cond} "
                               f"{matched}WHEN NOT MATCHED THEN INSERT *")
                self.spark.catalog.dropTempView(view)
                return
            if self.settings.is_databricks:
                target = DeltaTable.forName(self.spark, self.table_name(table, layer))
            else:
                target = DeltaTable.forPath(self.spark, str(self.location(table, layer)))
            builder = target.alias("t").merge(df.alias("s"), cond)
            if update:
                builder = builder.whenMatchedUpdateAll()
            builder.whenNotMatchedInsertAll().execute()

    def delete_table(self, table: str, layer: str = "gold") -> None:
        """Drop a table (used by resets and tests)."""
        with self.writer_lock(table, layer):
            if self.settings.is_databricks:
                self.spark.sql(f"DROP TABLE IF EXISTS {self.table_name(table, layer)}")
            else:
                shutil.rmtree(self.location(table, layer), ignore_errors=True)

    @contextmanager
    def writer_lock(self, table: str, layer: str = "gold", wait_s: float = 0.0) -> Iterator[None]:
        """Hold the single-writer lock of a local table.

        Delta on a plain local filesystem has no atomic put-if-absent across processes, so two
        processes committing to one table can corrupt its log. Each table therefore has at most
        one writer process at a time; a second one gets a clear error instead of a race.
        On Databricks the storage layer arbitrates commits and this is a no-op.
        """
        if self.settings.is_databricks:
            yield
            return
        lock_dir = self.settings.data_dir / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        key = str(lock_dir / f"{layer}.{table}.lock")
        with _HELD_LOCKS_GUARD:
            held = _HELD_LOCKS.get(key)
            if held:
                _HELD_LOCKS[key] = (held[0], held[1] + 1)
        if held:
            try:
                yield
            finally:
                self._release(key)
            return
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        deadline_ok = _flock(fd, wait_s)
        if not deadline_ok:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TableBusyError(
                f"table {layer}.{table} is being written by another health-monitor process (pid {owner}); "
                "stop it or wait for it to finish"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        with _HELD_LOCKS_GUARD:
            _HELD_LOCKS[key] = (fd, 1)
        try:
            yield
        finally:
            self._release(key)

    @staticmethod
    def _release(key: str) -> None:
        with _HELD_LOCKS_GUARD:
            fd, n = _HELD_LOCKS[key]
            if n > 1:
                _HELD_LOCKS[key] = (fd, n - 1)
                return
            del _HELD_LOCKS[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _where(self) -> str:
        if self.settings.is_databricks:
            return f"catalog {self.settings.catalog}"
        return f"data directory {self.settings.data_dir}"


def _flock(fd: int, wait_s: float) -> bool:
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")


def _conform(df: DataFrame, table: str, layer: str) -> DataFrame:
    """System tables read with their optional (newer) columns present, null where absent."""
    if layer != "system":
        return df
    from health_monitor.gold.system_schemas import with_optional_columns  # noqa: PLC0415 (import cycle)

    return with_optional_columns(df, table)


def _server_home(pyspark_dir: Path, home: Path) -> Path:
    """A SPARK_HOME for the server: pip's pyspark folder without ``python/lib/pyspark.zip``.

    Spark puts that zip first on its Python workers' path, and Python cannot cache bytecode for
    modules imported from a zip: every foreachBatch worker compiled pyspark's Connect client
    again (twice the CPU of an import from site-packages) within Spark's fixed 10 s start-up
    limit. Without the zip the workers import the installed pyspark, with its cached bytecode.
    """
    home.mkdir(parents=True, exist_ok=True)
    for entry in pyspark_dir.iterdir():
        link = home / entry.name
        if entry.name != "python" and not link.exists():
            link.symlink_to(entry)
    (home / "python" / "lib").mkdir(parents=True, exist_ok=True)
    return home


def start_connect_server(port: int, log: Path, timeout_s: float = 180.0) -> subprocess.Popen:
    """Start a local Spark Connect server with Delta on 127.0.0.1:``port`` (CI's Connect path).

    PySpark 4.0 ships the server (``SparkConnectServer``); Delta's jars come from the local Ivy
    cache (or ``HEALTH_MONITOR_SPARK_JARS``). Returns the process once the port accepts
    connections; raises :class:`HealthMonitorError` with the log's tail when it does not.
    """
    import socket
    import time

    import pyspark

    check_java()
    jars = os.environ.get("HEALTH_MONITOR_SPARK_JARS") or _cached_delta_jars()
    if not jars:
        raise HealthMonitorError("Delta's jars are not in the local Ivy cache: run any local command once first")
    home = _server_home(Path(pyspark.__file__).parent, log.parent / "spark-home")
    confs = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.driver.memory": os.environ.get("HEALTH_MONITOR_DRIVER_MEMORY", "2g"),
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
        # The local session's small-machine settings, set where a Connect client cannot: Delta's
        # 50 snapshot partitions would be 50 tasks per log replay, and INFO logs a line per task.
        "spark.default.parallelism": "4",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.codegen.cache.maxEntries": os.environ.get("HEALTH_MONITOR_CODEGEN_CACHE", CODEGEN_CACHE_ENTRIES),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties')} "
                                         f"{os.environ.get('HEALTH_MONITOR_JVM_OPTIONS', JVM_OPTIONS)}",
    }
    cmd = [str(home / "bin" / "spark-submit"), "--master", "local[2]", "--jars", jars,
           "--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for k, v in confs.items():
        cmd += ["--conf", f"{k}={v}"]
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    out = log.open("wb")
    proc = subprocess.Popen([*cmd, "spark-internal"], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(1.0)
    proc.kill()
    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    raise HealthMonitorError(f"Spark Connect server did not start on port {port}: {' | '.join(tail)}")
