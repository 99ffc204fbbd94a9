"""The ``health-monitor`` command: a thin layer that parses arguments and calls library functions.

Each sub-command lives in its own module with ``register(subparsers)``; the module's handler
gets the parsed arguments and a :class:`Context`. User mistakes surface as one-line errors
(exit 2), never as tracebacks; ``--verbose`` shows logs and tracebacks for real bugs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property

from health_monitor import progress
from health_monitor.errors import HealthMonitorError, environment_error
from health_monitor.settings import Settings, load_settings

#: Sub-command modules under ``health_monitor.cli``, in the order ``--help`` lists them.
COMMANDS = [
    "setup", "simulate", "build", "ingest", "tables",
    "stream", "alerts", "rules", "detect", "replay", "evaluate",
    "features", "train", "models",
    "score", "forecast", "savings", "report", "serve",
]


@dataclass
class Context:
    """What every command handler gets besides its arguments."""

    settings: Settings
    verbose: bool = False

    @cached_property
    def lake(self):  # noqa: ANN201 - imported lazily so --help never starts a JVM
        from health_monitor.runtime import Lakehouse

        return Lakehouse(self.settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="health-monitor",
        description="ML and streaming anomaly detection for Databricks estates "
        "(cost, security, performance, reliability, data quality).",
    )
    parser.add_argument("--data-dir", help="local lakehouse folder (default ./.health-monitor or $HEALTH_MONITOR_HOME)")
    parser.add_argument("--catalog", help="Unity Catalog catalog on Databricks (default health_monitor)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"health_monitor.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"health_monitor.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``health-monitor`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("py4j", "mlflow", "cmdstanpy", "prophet", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.INFO if args.verbose else logging.ERROR)
    progress.enable(True)
    from health_monitor import runtime

    # A session that was running before this call (tests, notebooks) belongs to the caller.
    owns_spark = runtime._SPARK is None
    try:
        ctx = Context(settings=load_settings(args.data_dir, args.catalog), verbose=args.verbose)
        return int(args.func(args, ctx) or 0)
    except HealthMonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: no tracebacks unless asked
        # The one handler for the environment (permissions, read-only or full disk, a folder
        # where a file was expected), whichever command and whether Python or Spark hit it.
        env = environment_error(exc)
        if env is not None and not args.verbose:
            print(f"error: {env}", file=sys.stderr)
            return 2
        if args.verbose or os.environ.get("HEALTH_MONITOR_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(rerun with --verbose for details)", file=sys.stderr)
        return 1
    finally:
        if owns_spark:
            runtime.stop_spark()


if __name__ == "__main__":
    sys.exit(main())
