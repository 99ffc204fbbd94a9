"""Contracts of the Gold layer: every table the models, streams and reports read.

Columns follow the Databricks system tables (flattened where the spec's SQL flattens them,
e.g. ``cluster_id`` from ``usage_metadata.cluster_id``) plus derived columns the builders add
(``list_price``, ``list_cost``, ``is_failure``, ...). ``docs/gold-schema.md`` is generated from
this module (``python -m health_monitor.gold.docs``); do not edit it by hand.

Why one module over 400 lines: it is data, one contract per Gold table, and the schema doc is
generated from it.
"""

from __future__ import annotations

from health_monitor.gold.ddl import TableSpec, table

GOLD_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        table(
            "fact_usage", "gold",
            """
            record_id string NOT NULL
            account_id string NOT NULL
            workspace_id string NOT NULL
            sku_name string NOT NULL
            cloud string
            usage_start_time timestamp NOT NULL
            usage_end_time timestamp NOT NULL
            usage_date date NOT NULL
            usage_unit string
            usage_quantity decimal(38,18) NOT NULL -- negative on RETRACTION records, so sums net out
            record_type string NOT NULL -- ORIGINAL | RETRACTION | RESTATEMENT
            ingestion_date date
            billing_origin_product string
            usage_type string
            custom_tags map<string,string>
            is_tagged boolean -- custom_tags has a team, project or cost_center tag
            tag_team string
            tag_project string
            tag_cost_center string
            cluster_id string
            warehouse_id string
            instance_pool_id string
            node_type string
            job_id string -- billing job_id, or for all-purpose compute the job attributed through cluster_id
            usage_metadata_job_run_id string
            job_id_source string -- BILLING | CLUSTER_ATTRIBUTION | null
            job_name string
            run_name string
            notebook_id string
            dlt_pipeline_id string
            endpoint_name string
            run_as string
            created_by string
            owned_by string
            is_serverless boolean
            is_photon boolean
            jobs_tier string
            sql_tier string
            list_price decimal(38,18) -- list price in force at usage_start_time
            list_cost decimal(38,18) -- usage_quantity x list_price
            currency_code string
            """,
            ["record_id"],
            "Billable usage with list price and cost at usage time; one row per usage record.",
            event_time="usage_start_time", partition_by=["usage_date"],
        ),
        table(
            "dim_workspace", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            workspace_name string
            workspace_url string
            create_time timestamp
            status string
            """,
            ["workspace_id", "effective_from"], "Workspaces (SCD2).", scd2=True,
        ),
        table(
            "dim_sku", "gold",
            """
            sku_name string NOT NULL
            cloud string NOT NULL
            usage_unit string
            currency_code string
            list_price decimal(38,18) NOT NULL
            promotional_price decimal(38,18)
            effective_list_price decimal(38,18)
            sku_category string -- JOBS | ALL_PURPOSE | SQL | DLT | MODEL_SERVING | ...
            is_serverless boolean
            is_photon boolean
            """,
            ["sku_name", "cloud", "effective_from"],
            "SKUs with their list price; each price period is one SCD2 version.", scd2=True,
        ),
        table(
            "dim_date", "gold",
            """
            date_key date NOT NULL
            year int
            quarter int
            month int
            day_of_month int
            day_of_week int -- 1 = Sunday ... 7 = Saturday (Spark DAYOFWEEK)
            day_name string
            week_of_year int
            days_in_month int
            is_weekend boolean
            is_month_end boolean -- last day of the month
            is_quarter_end boolean
            is_year_end boolean
            is_holiday boolean
            holiday_name string
            """,
            ["date_key"], "Calendar with weekends, month ends and public holidays.",
        ),
        table(
            "commit_configurations", "gold",
            """
            account_id string NOT NULL
            commit_year int NOT NULL
            workspace_id string -- null for the account-wide commit
            commit_amount decimal(38,2) NOT NULL
            currency_code string
            start_date date NOT NULL
            end_date date NOT NULL
            updated_at timestamp
            """,
            ["account_id", "commit_year", "workspace_id"],
            "Contracted Databricks commit per year (account-wide or per workspace); user configuration.",
        ),
        table(
            "fact_job_run_timeline", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            run_id string NOT NULL
            run_name string
            run_type string
            trigger_type string
            is_retry boolean -- trigger_type = RETRY
            period_start_time timestamp NOT NULL -- start of the run (first hourly row)
            period_end_time timestamp NOT NULL -- end of the run (last hourly row)
            run_date date NOT NULL
            result_state string -- from the final row; null while running
            termination_code string
            termination_type string
            is_success boolean -- result_state = SUCCEEDED
            is_failure boolean -- result_state in ERROR, FAILED, TIMED_OUT
            compute_ids array<string>
            cluster_id string -- first classic cluster of the run
            warehouse_id string
            compute_type string
            setup_duration_seconds bigint
            queue_duration_seconds bigint
            run_duration_seconds bigint
            cleanup_duration_seconds bigint
            execution_duration_seconds bigint
            duration_seconds bigint -- period_end_time - period_start_time
            period_row_count int -- hourly rows the run was split into
            """,
            ["workspace_id", "run_id"], "One row per job run (hourly rows collapsed).",
            event_time="period_start_time", partition_by=["run_date"],
        ),
        table(
            "dim_job", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            name string
            creator_id string
            run_as string
            description string
            tags map<string,string>
            tag_team string
            tag_project string
            tag_cost_center string
            trigger_type string
            schedule_cron string
            paused boolean
            timeout_seconds bigint
            task_count int
            dependency_count int -- task dependency edges
            create_time timestamp
            change_time timestamp
            delete_time timestamp
            """,
            ["workspace_id", "job_id", "effective_from"], "Jobs (SCD2).", scd2=True,
        ),
        table(
            "dim_cluster", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            cluster_id string NOT NULL
            cluster_name string
            owned_by string
            create_time timestamp
            delete_time timestamp
            driver_node_type string
            worker_node_type string
            worker_count bigint
            min_autoscale_workers bigint
            max_autoscale_workers bigint
            is_autoscaling boolean
            auto_termination_minutes bigint
            enable_elastic_disk boolean
            tags map<string,string>
            cluster_source string
            availability string -- SPOT | ON_DEMAND | SPOT_WITH_FALLBACK
            dbr_version string
            dbr_major_version int
            is_ml_runtime boolean
            data_security_mode string
            policy_id string
            worker_cores double
            worker_memory_gb double
            driver_memory_gb double
            change_time timestamp
            """,
            ["workspace_id", "cluster_id", "effective_from"], "Clusters with node hardware (SCD2).",
            scd2=True,
        ),
        table(
            "fact_node_timeline", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            cluster_id string NOT NULL
            instance_id string NOT NULL
            start_time timestamp NOT NULL
            end_time timestamp NOT NULL
            node_date date NOT NULL
            driver boolean
            node_type string
            cpu_user_percent double
            cpu_system_percent double
            cpu_wait_percent double
            cpu_total_percent double -- user + system
            mem_used_percent double
            mem_swap_percent double
            network_sent_bytes bigint
            network_received_bytes bigint
            """,
            ["cluster_id", "instance_id", "start_time"], "Node utilization samples.",
            event_time="start_time", partition_by=["node_date"],
        ),
        table(
            "fact_query_history", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            statement_id string NOT NULL
            executed_by string
            executed_by_user_id string
            executed_as string
            session_id string
            execution_status string
            compute_type string
            warehouse_id string
            cluster_id string
            statement_text string
            statement_type string
            error_message string
            client_application string
            start_time timestamp NOT NULL
            end_time timestamp
            query_date date NOT NULL
            total_duration_ms bigint
            waiting_for_compute_duration_ms bigint
            waiting_at_capacity_duration_ms bigint
            execution_duration_ms bigint
            compilation_duration_ms bigint
            total_task_duration_ms bigint
            result_fetch_duration_ms bigint
            read_partitions bigint
            pruned_files bigint
            read_files bigint
            read_rows bigint
            produced_rows bigint
            read_bytes bigint
            read_io_cache_percent int
            from_result_cache boolean
            spilled_local_bytes bigint
            written_bytes bigint
            written_rows bigint
            written_files bigint
            shuffle_read_bytes bigint
            pruned_files_bytes bigint
            read_files_bytes bigint
            query_source_job_id string
            query_source_dashboard_id string
            query_source_notebook_id string
            """,
            ["statement_id"], "SQL statements with durations, I/O and source.",
            event_time="start_time", partition_by=["query_date"],
        ),
        table(
            "dim_warehouse", "gold",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            warehouse_id string NOT NULL
            warehouse_name string
            warehouse_type string
            warehouse_channel string
            warehouse_size string
            warehouse_size_rank int -- 2X_SMALL = 1 ... 4X_LARGE = 9
            min_clusters int
            max_clusters int
            auto_stop_minutes int
            tags map<string,string>
            created_by string
            change_time timestamp
            delete_time timestamp
            """,
            ["workspace_id", "warehouse_id", "effective_from"], "SQL warehouses (SCD2).", scd2=True,
        ),
        table(
            "fact_table_lineage", "gold",
            """
            record_id string NOT NULL
            account_id string NOT NULL
            metastore_id string
            workspace_id string NOT NULL
            entity_type string
            entity_id string
            entity_run_id string
            source_table_full_name string
            source_table_catalog string
            source_table_schema string
            source_table_name string
            source_type string
            target_table_full_name string
            target_table_catalog string
            target_table_schema string
            target_table_name string
            target_type string
            created_by string
            event_time timestamp NOT NULL
            event_date date NOT NULL
            event_id string
            statement_id string
            job_id string
            job_run_id string
            notebook_id string
            direct_access boolean
            is_read boolean -- a source table is set
            is_write boolean -- a target table is set
            """,
            ["record_id"], "Reads and writes of tables by users, jobs and queries.",
            event_time="event_time", partition_by=["event_date"],
        ),
        table(
            "fact_audit_events", "gold",
            """
            event_id string NOT NULL
            account_id string NOT NULL
            workspace_id string NOT NULL
            version string
            event_time timestamp NOT NULL
            event_date date NOT NULL
            source_ip_address string
            user_agent string
            session_id string
            user_email string
            subject_name string
            service_name string NOT NULL
            action_name string NOT NULL
            request_id string
            request_params map<string,string>
            status_code int
            error_message string
            response_result string
            audit_level string
            run_by string
            run_as string
            is_failed boolean -- status_code >= 400
            """,
            ["event_id"], "Audit events flattened for per-user features.",
            event_time="event_time", partition_by=["event_date"],
        ),
        table(
            "fact_data_quality_monitoring_table_results", "gold",
            """
            event_time timestamp NOT NULL
            event_date date NOT NULL
            catalog_name string NOT NULL
            schema_name string NOT NULL
            table_name string NOT NULL
            table_full_name string NOT NULL
            table_id string NOT NULL
            status string
            freshness_status string
            commit_freshness_status string
            commit_freshness_last_value timestamp
            commit_freshness_predicted_value timestamp
            completeness_status string
            total_row_count bigint
            total_row_count_min_predicted bigint
            total_row_count_max_predicted bigint
            daily_row_count bigint
            daily_row_count_min_predicted bigint
            daily_row_count_max_predicted bigint
            downstream_impact_level int
            num_downstream_tables bigint
            num_queries_on_affected_tables bigint
            upstream_job_ids array<string>
            """,
            ["table_id", "event_time"], "Data quality monitoring results per table and check time.",
            event_time="event_time",
        ),
        table(
            "fact_table_schema_history", "gold",
            """
            snapshot_time timestamp NOT NULL
            table_catalog string NOT NULL
            table_schema string NOT NULL
            table_name string NOT NULL
            table_full_name string NOT NULL
            column_name string NOT NULL
            ordinal_position int
            data_type string
            full_data_type string
            is_nullable string
            partition_index int
            comment string
            """,
            ["snapshot_time", "table_full_name", "column_name"],
            "Column snapshots as information_schema.columns showed them at each snapshot time.",
            event_time="snapshot_time",
        ),
        table(
            "sla_definitions", "gold",
            """
            workspace_id string NOT NULL
            job_id string NOT NULL
            sla_type string NOT NULL -- MAX_DURATION | COMPLETE_BY
            max_duration_minutes double -- for MAX_DURATION
            complete_by_time string -- HH:MM in timezone, for COMPLETE_BY
            timezone string
            owner string
            created_at timestamp
            """,
            ["workspace_id", "job_id", "sla_type"], "Service-level objectives per job; user configuration.",
        ),
    ]
}

#: Written by the simulator only, read by evaluation code only: never by a model or detector.
GROUND_TRUTH = table(
    "ground_truth_incidents", "simulator",
    """
    incident_id string NOT NULL
    incident_type string NOT NULL
    domain string NOT NULL -- cost | security | performance | reliability | quality
    entity_type string NOT NULL -- workspace | job | user | cluster | warehouse | table | sku
    entity_id string NOT NULL
    workspace_id string
    start_time timestamp NOT NULL
    end_time timestamp NOT NULL
    description string
    """,
    ["incident_id"], "Incidents the simulator injected, for scoring detectors only.",
)

QUARANTINE = table(
    "quarantine", "monitor",
    """
    quarantine_id string NOT NULL
    table_name string NOT NULL
    source_file string NOT NULL
    row_number bigint
    raw_text string
    reason string NOT NULL
    ingested_at timestamp NOT NULL
    """,
    ["quarantine_id"], "Input rows rejected by ingest, with the reason.",
)


def gold_table(name: str) -> TableSpec:
    """The contract of a Gold table, or a one-line error listing the known names."""
    from health_monitor.errors import HealthMonitorError

    if name not in GOLD_TABLES:
        raise HealthMonitorError(f"unknown Gold table {name!r}; known: {', '.join(GOLD_TABLES)}")
    return GOLD_TABLES[name]
