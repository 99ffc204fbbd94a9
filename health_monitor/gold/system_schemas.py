"""Contracts of the Databricks system tables the Gold layer is built from.

Columns and types follow ``system.*`` (see ``shared/spec/system-tables.md``). The simulator
writes tables of exactly these shapes into the local ``system`` layer and ingest accepts
exports of them, so the builders read the same shapes in both environments. Only the columns
the monitor uses are listed; extra columns in real tables are ignored, and columns marked
``optional`` (newer ones) are read as null where an account does not have them yet.

Why one module over 400 lines: it is data, one contract per system table.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from health_monitor.gold.ddl import TableSpec, table

_log = logging.getLogger(__name__)

_USAGE_METADATA = (
    "struct<cluster_id:string,job_id:string,warehouse_id:string,instance_pool_id:string,"
    "node_type:string,job_run_id:string,notebook_id:string,dlt_pipeline_id:string,"
    "endpoint_name:string,endpoint_id:string,dlt_update_id:string,run_name:string,"
    "job_name:string,notebook_path:string,app_id:string,app_name:string,budget_policy_id:string>"
)

SYSTEM_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        table(
            "billing.usage", "system",
            f"""
            account_id string NOT NULL
            workspace_id string NOT NULL
            record_id string NOT NULL
            sku_name string NOT NULL
            cloud string
            usage_start_time timestamp NOT NULL
            usage_end_time timestamp NOT NULL
            usage_date date NOT NULL
            custom_tags map<string,string>
            usage_unit string
            usage_quantity decimal(38,18) NOT NULL
            usage_metadata {_USAGE_METADATA}
            identity_metadata struct<run_as:string,created_by:string,owned_by:string,run_by:string>
            record_type string NOT NULL -- ORIGINAL | RETRACTION | RESTATEMENT
            ingestion_date date
            billing_origin_product string
            product_features struct<jobs_tier:string,sql_tier:string,dlt_tier:string,is_serverless:boolean,is_photon:boolean,serving_type:string,performance_target:string>
            usage_type string
            """,
            ["record_id"], "Billable usage, one record per SKU per hour per resource.",
            event_time="usage_start_time",
        ),
        table(
            "billing.list_prices", "system",
            """
            account_id string
            price_start_time timestamp NOT NULL
            price_end_time timestamp -- null = current price
            sku_name string NOT NULL
            cloud string
            currency_code string
            usage_unit string
            pricing struct<default:decimal(38,18),promotional:struct<default:decimal(38,18)>,effective_list:struct<default:decimal(38,18)>>
            """,
            ["sku_name", "cloud", "price_start_time"], "Historical list prices per SKU.",
        ),
        table(
            "access.workspaces_latest", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            workspace_name string
            workspace_url string
            create_time timestamp
            status string -- RUNNING | PROVISIONING | CANCELLED | FAILED | BANNED
            """,
            ["workspace_id"], "Latest metadata of every workspace in the account.",
        ),
        table(
            "lakeflow.jobs", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            name string
            creator_id string
            tags map<string,string>
            run_as string
            change_time timestamp NOT NULL
            delete_time timestamp
            description string
            trigger struct<schedule:struct<quartz_cron_expression:string,timezone_id:string,pause_status:string>> -- optional: added to system.* in 2025; accounts without it read null
            trigger_type string
            paused boolean
            timeout_seconds bigint
            health_rules array<struct<metric:string,operator:string,value:bigint>>
            create_time timestamp
            """,
            ["workspace_id", "job_id", "change_time"], "Job definitions (SCD: one row per change).",
            event_time="change_time",
        ),
        table(
            "lakeflow.job_tasks", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            task_key string NOT NULL
            depends_on_keys array<string>
            change_time timestamp NOT NULL
            delete_time timestamp
            """,
            ["workspace_id", "job_id", "task_key", "change_time"], "Tasks of each job (SCD).",
        ),
        table(
            "lakeflow.job_run_timeline", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            run_id string NOT NULL
            period_start_time timestamp NOT NULL
            period_end_time timestamp NOT NULL
            trigger_type string -- CRON | ONETIME | PERIODIC | FILE_ARRIVAL | CONTINUOUS | RETRY ...
            result_state string -- only on the final hourly row of a run
            run_type string -- JOB_RUN | SUBMIT_RUN | WORKFLOW_RUN
            run_name string
            compute_ids array<string>
            termination_code string -- only on the final hourly row of a run
            job_parameters map<string,map<string,string>> -- optional: real type per the docs
            compute array<struct<type:string,cluster_id:string,warehouse_id:string>> -- optional: added to system.* in 2025; accounts without it read null
            termination_type string -- optional: added to system.* in 2025; accounts without it read null
            setup_duration_seconds bigint -- optional: added to system.* in 2025; accounts without it read null
            queue_duration_seconds bigint -- optional: added to system.* in 2025; accounts without it read null
            run_duration_seconds bigint -- optional: added to system.* in 2025; accounts without it read null
            cleanup_duration_seconds bigint -- optional: added to system.* in 2025; accounts without it read null
            execution_duration_seconds bigint -- optional: added to system.* in 2025; accounts without it read null
            """,
            ["workspace_id", "run_id", "period_start_time"],
            "Job runs, split into hourly rows for runs longer than an hour.",
            event_time="period_start_time",
        ),
        table(
            "lakeflow.job_task_run_timeline", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            job_id string NOT NULL
            run_id string NOT NULL -- the task run
            job_run_id string -- the job run the task belongs to
            parent_run_id string
            task_key string
            period_start_time timestamp NOT NULL
            period_end_time timestamp NOT NULL
            compute_ids array<string> -- the only record of compute other than job clusters
            result_state string
            termination_code string
            """,
            ["workspace_id", "run_id", "period_start_time"],
            "Task runs, split into hourly rows; the compute each task ran on (all-purpose included).",
            event_time="period_start_time",
        ),
        table(
            "compute.clusters", "system",
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
            auto_termination_minutes bigint
            enable_elastic_disk boolean
            tags map<string,string>
            cluster_source string -- UI | API | JOB | PIPELINE | ...
            init_scripts array<string>
            aws_attributes struct<availability:string,first_on_demand:int,spot_bid_price_percent:int,zone_id:string>
            driver_instance_pool_id string
            worker_instance_pool_id string
            dbr_version string
            change_time timestamp NOT NULL
            change_date date
            data_security_mode string
            policy_id string
            """,
            ["workspace_id", "cluster_id", "change_time"], "Cluster configurations (SCD).",
            event_time="change_time",
        ),
        table(
            "compute.node_types", "system",
            """
            account_id string
            node_type string NOT NULL
            core_count double
            memory_mb bigint
            gpu_count bigint
            """,
            ["node_type"], "Hardware of each node type.",
        ),
        table(
            "compute.node_timeline", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            cluster_id string NOT NULL
            instance_id string NOT NULL
            start_time timestamp NOT NULL
            end_time timestamp NOT NULL
            driver boolean
            cpu_user_percent double
            cpu_system_percent double
            cpu_wait_percent double
            mem_used_percent double
            mem_swap_percent double
            network_sent_bytes bigint
            network_received_bytes bigint
            disk_free_bytes_per_mount_point map<string,bigint>
            node_type string
            private_ip string
            """,
            ["cluster_id", "instance_id", "start_time"], "Utilization of every node over time.",
            event_time="start_time",
        ),
        table(
            "compute.warehouses", "system",
            """
            warehouse_id string NOT NULL
            workspace_id string NOT NULL
            account_id string NOT NULL
            warehouse_name string
            warehouse_type string -- CLASSIC | PRO | SERVERLESS
            warehouse_channel string
            warehouse_size string -- 2X_SMALL ... 4X_LARGE
            min_clusters int
            max_clusters int
            auto_stop_minutes int
            tags map<string,string>
            change_time timestamp NOT NULL
            delete_time timestamp
            created_by string
            """,
            ["workspace_id", "warehouse_id", "change_time"], "SQL warehouse configurations (SCD).",
            event_time="change_time",
        ),
        table(
            "compute.warehouse_events", "system",
            """
            account_id string
            workspace_id string NOT NULL
            warehouse_id string NOT NULL
            event_type string -- SCALED_UP | SCALED_DOWN | STOPPING | RUNNING | STARTING | STOPPED
            cluster_count int
            event_time timestamp NOT NULL
            """,
            ["workspace_id", "warehouse_id", "event_time", "event_type"], "Warehouse scaling events.",
            event_time="event_time",
        ),
        table(
            "query.history", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL
            statement_id string NOT NULL
            executed_by string
            session_id string
            execution_status string -- FINISHED | FAILED | CANCELED
            compute struct<type:string,cluster_id:string,warehouse_id:string>
            executed_by_user_id string
            statement_text string
            statement_type string
            error_message string
            client_application string
            client_driver string
            total_duration_ms bigint
            waiting_for_compute_duration_ms bigint
            waiting_at_capacity_duration_ms bigint
            execution_duration_ms bigint
            compilation_duration_ms bigint
            total_task_duration_ms bigint
            result_fetch_duration_ms bigint
            start_time timestamp NOT NULL
            end_time timestamp
            update_time timestamp
            read_partitions bigint
            pruned_files bigint
            read_files bigint
            read_rows bigint
            produced_rows bigint
            read_bytes bigint
            read_io_cache_percent tinyint
            from_result_cache boolean
            spilled_local_bytes bigint
            written_bytes bigint
            shuffle_read_bytes bigint
            query_source struct<job_info:struct<job_id:string,job_run_id:string,job_task_run_id:string>,dashboard_id:string,alert_id:string,notebook_id:string,sql_query_id:string>
            executed_as string
            written_rows bigint
            written_files bigint
            pruned_files_bytes bigint -- optional: added to system.* in 2025; accounts without it read null
            read_files_bytes bigint -- optional: added to system.* in 2025; accounts without it read null
            """,
            ["statement_id"], "Every SQL statement run on warehouses and serverless compute.",
            event_time="start_time",
        ),
        table(
            "access.audit", "system",
            """
            account_id string NOT NULL
            workspace_id string NOT NULL -- "0" for account-level events
            version string
            event_time timestamp NOT NULL
            event_date date NOT NULL
            source_ip_address string
            user_agent string
            session_id string
            user_identity struct<email:string,subject_name:string>
            service_name string NOT NULL
            action_name string NOT NULL
            request_id string
            request_params map<string,string>
            response struct<status_code:int,error_message:string,result:string>
            audit_level string -- ACCOUNT_LEVEL | WORKSPACE_LEVEL
            event_id string NOT NULL
            identity_metadata struct<run_by:string,run_as:string,acting_resource:string>
            """,
            ["event_id"], "Audit log of user and service actions.",
            event_time="event_time",
        ),
        table(
            "access.table_lineage", "system",
            """
            account_id string NOT NULL
            metastore_id string
            workspace_id string NOT NULL
            entity_type string -- NOTEBOOK | JOB | PIPELINE | DASHBOARD_V3 | DBSQL_DASHBOARD | DBSQL_QUERY
            entity_id string
            entity_run_id string
            source_table_full_name string
            source_table_catalog string
            source_table_schema string
            source_table_name string
            source_path string
            source_type string
            target_table_full_name string
            target_table_catalog string
            target_table_schema string
            target_table_name string
            target_path string
            target_type string
            created_by string
            event_time timestamp NOT NULL
            event_date date NOT NULL
            record_id string NOT NULL
            event_id string
            statement_id string
            entity_metadata struct<job_info:struct<job_id:string,job_run_id:string>,notebook_id:string,dashboard_id:string,sql_query_id:string>
            direct_access boolean -- optional: added to system.* in 2025; accounts without it read null
            """,
            ["record_id"], "Table-level lineage: who read and wrote which table.",
            event_time="event_time",
        ),
        table(
            "data_quality_monitoring.table_results", "system",
            """
            event_time timestamp NOT NULL
            catalog_name string NOT NULL
            schema_name string NOT NULL
            table_name string NOT NULL
            catalog_id string
            schema_id string
            table_id string NOT NULL
            status string -- Healthy | Unhealthy | Unknown
            freshness struct<status:string,commit_freshness:struct<status:string,error_code:string,last_value:timestamp,predicted_value:timestamp>>
            completeness struct<status:string,total_row_count:struct<status:string,error_code:string,last_value:bigint,min_predicted_value:bigint,max_predicted_value:bigint>,daily_row_count:struct<status:string,error_code:string,last_value:bigint,min_predicted_value:bigint,max_predicted_value:bigint>>
            downstream_impact struct<impact_level:int,num_downstream_tables:bigint,num_queries_on_affected_tables:bigint>
            root_cause_analysis struct<upstream_jobs:array<struct<job_id:string,workspace_id:string,job_name:string,last_run_status:string,run_page_url:string>>>
            """,
            ["table_id", "event_time"], "Freshness and completeness checks of monitored tables.",
            event_time="event_time",
        ),
        table(
            "information_schema.columns", "system",
            """
            snapshot_time timestamp -- optional, null in the real view (a live snapshot); local histories carry it
            table_catalog string NOT NULL
            table_schema string NOT NULL
            table_name string NOT NULL
            column_name string NOT NULL
            ordinal_position int
            data_type string
            full_data_type string
            is_nullable string -- YES | NO
            partition_index int
            comment string
            """,
            # snapshot_time stays in the key (null-safe): a local history holds one row per column
            # per snapshot, and ingest must not drop later snapshots as duplicates.
            ["snapshot_time", "table_catalog", "table_schema", "table_name", "column_name"],
            "The columns information_schema shows now (Databricks: each Gold build keeps a dated "
            "snapshot); local histories and exports may carry their own snapshot_time.",
        ),
    ]
}


def with_optional_columns(df: DataFrame, source: str) -> DataFrame:
    """``df`` (a read of ``system.<source>``) with every optional column it lacks added as null.

    Newer system-table columns reach accounts at different times: a missing one is a one-line
    note, never an error, and the builders see the contract's shape. Extra columns pass through.
    """
    spec = SYSTEM_TABLES.get(source)
    if spec is None:
        return df
    present = set(df.columns)
    missing = [c for c in spec.optional if c not in present]
    if missing:
        _log.info("system.%s has no column(s) %s yet: read as null", source, ", ".join(missing))
    return df.select("*", *[F.lit(None).cast(spec.column(c).data_type).alias(c) for c in missing])
