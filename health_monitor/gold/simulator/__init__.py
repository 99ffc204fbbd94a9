"""Estate simulator: a realistic Databricks account written as system tables, then built into Gold.

``simulate(lake, days, workspaces, seed, scale)`` draws an estate from the seed (workspaces,
people, clusters, warehouses, jobs of many archetypes, tables), plans incidents of 15 types
across the five domains, generates every table of
:data:`health_monitor.gold.system_schemas.SYSTEM_TABLES` into the ``system`` layer, writes the
Gold user-configuration tables (``commit_configurations``, ``sla_definitions``) and the
``ground_truth_incidents`` table (``simulator`` layer, read only by evaluation), then builds
Gold with the same builders that run on real system tables. ``simulate_live`` continues an
estate hour by hour.

Modules: ``entities`` (the estate and its archetypes), ``calendar`` (seasonality), ``incidents``
(the plan), ``jobs``, ``compute`` (clusters, uptime, node timeline at one row per node per 10
minutes instead of per minute), ``queries`` (warehouses), ``usage`` (billing), ``audit`` (audit
log and lineage), ``quality`` (monitoring results, column snapshots, user configuration),
``generate`` (one window), ``write`` (pandas to Delta) and ``live``.
"""

from __future__ import annotations

from health_monitor.gold.simulator.run import SimulationSummary, simulate, simulate_live

__all__ = ["SimulationSummary", "simulate", "simulate_live"]
