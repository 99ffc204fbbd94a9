"""``health-monitor setup``: create the monitor's Unity Catalog schemas and its state volume."""

from __future__ import annotations

import argparse

from health_monitor.settings import STATE_VOLUME


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup", help="create the Unity Catalog schemas and the state volume (Databricks; idempotent)",
        description="Create <catalog>.{gold,features,ml,monitor} and the volume <catalog>.monitor.state "
        "that holds build state and stream checkpoints. Reading system.* needs grants an account "
        "admin gives once (see docs/databricks.md). Locally the lakehouse creates its folders itself.",
    )
    p.set_defaults(func=run)


def statements(catalog: str, schemas: dict[str, str]) -> list[str]:
    """The idempotent DDL that prepares ``catalog`` for the monitor (the system layer is system.*)."""
    sql = [f"CREATE SCHEMA IF NOT EXISTS `{catalog}`.`{schemas[layer]}`"
           for layer in ("gold", "features", "ml", "monitor")]
    sql.append(f"CREATE VOLUME IF NOT EXISTS `{catalog}`.`{schemas['monitor']}`.`{STATE_VOLUME}`")
    return sql


def run(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    s = ctx.settings
    if not s.is_databricks:
        print(f"local lakehouse in {s.data_dir}: nothing to set up (folders are created on first write)")
        return 0
    for stmt in statements(s.catalog, s.schemas):
        ctx.lake.spark.sql(stmt)
        print(stmt)
    return 0
