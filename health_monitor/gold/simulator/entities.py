"""The estate: workspaces, people, hardware, SKUs and prices, clusters, warehouses, jobs, tables.

Everything here is drawn once from the seed, so the same seed and size give the same estate,
and live mode can rebuild it to continue where a simulation stopped. Hidden traits (a job's
data growth, a dependency's flakiness, a cluster's spot bidding) live on these objects and
drive behaviour later; none of them is written to a table as such.

Why one module over 400 lines: the entities are drawn together from one seeded random stream;
the draw order is what makes a seed reproducible, and split across modules it would become a
cross-module contract.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from health_monitor.gold.simulator.calendar import Window

CLOUD = "AWS"
METASTORE_ID = "7c1d3f0e-5a2b-4c7d-9e8f-0a1b2c3d4e5f"


def hexid(rng: np.random.Generator, n: int = 16) -> str:
    """A seeded lowercase hex id."""
    return "".join(f"{b:02x}" for b in rng.integers(0, 256, size=(n + 1) // 2))[:n]


def uid(rng: np.random.Generator) -> str:
    """A seeded UUID (version 4 layout)."""
    return str(uuid.UUID(bytes=bytes(rng.integers(0, 256, 16, dtype=np.uint8)), version=4))


def uids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` seeded UUID strings, fast enough for hundreds of thousands of rows."""
    hexes = np.frombuffer(rng.bytes(16 * n).hex().encode(), dtype=np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for src, dst in ((slice(0, 8), slice(0, 8)), (slice(8, 12), slice(9, 13)), (slice(12, 16), slice(14, 18)),
                     (slice(16, 20), slice(19, 23)), (slice(20, 32), slice(24, 36))):
        out[:, dst] = hexes[:, src]
    out[:, 14], out[:, 19] = ord("4"), ord("a")  # version 4, RFC 4122 variant
    return out.view("S36").ravel().astype("U36").astype(object)


@dataclass(frozen=True)
class NodeType:
    """A cloud instance type and its hardware (``system.compute.node_types``)."""

    node_type: str
    cores: float
    memory_mb: int
    gpus: int = 0

    @property
    def dbu_per_hour(self) -> float:
        """DBUs one node of this type bills per hour (about 0.17 per core, AWS-like)."""
        return round(self.cores * 0.17 + self.gpus * 2.5, 3)


NODE_TYPES = [
    NodeType("m5d.large", 2, 8192), NodeType("m5d.xlarge", 4, 16384), NodeType("m5d.2xlarge", 8, 32768),
    NodeType("m5d.4xlarge", 16, 65536), NodeType("r5d.xlarge", 4, 32768), NodeType("r5d.2xlarge", 8, 65536),
    NodeType("r5d.4xlarge", 16, 131072), NodeType("i3.xlarge", 4, 31232), NodeType("i3.2xlarge", 8, 62464),
    NodeType("c5d.2xlarge", 8, 16384), NodeType("c5d.4xlarge", 16, 32768), NodeType("g5.xlarge", 4, 16384, 1),
    NodeType("g5.4xlarge", 16, 65536, 1), NodeType("p3.2xlarge", 8, 62464, 1),
]
NODES = {n.node_type: n for n in NODE_TYPES}
CPU_NODES = [n.node_type for n in NODE_TYPES if not n.gpus]
GPU_NODES = [n.node_type for n in NODE_TYPES if n.gpus]

#: sku -> (list price per DBU, billing_origin_product, usage_unit); AWS premium tier names.
SKUS: dict[str, tuple[float, str, str]] = {
    "PREMIUM_JOBS_COMPUTE": (0.15, "JOBS", "DBU"),
    "PREMIUM_JOBS_COMPUTE_(PHOTON)": (0.15, "JOBS", "DBU"),
    "PREMIUM_ALL_PURPOSE_COMPUTE": (0.55, "ALL_PURPOSE", "DBU"),
    "PREMIUM_ALL_PURPOSE_COMPUTE_(PHOTON)": (0.55, "ALL_PURPOSE", "DBU"),
    "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST": (0.35, "JOBS", "DBU"),
    "PREMIUM_SQL_COMPUTE": (0.22, "SQL", "DBU"),
    "PREMIUM_SQL_PRO_COMPUTE_US_EAST": (0.55, "SQL", "DBU"),
    "PREMIUM_SERVERLESS_SQL_COMPUTE_US_EAST": (0.70, "SQL", "DBU"),
    "PREMIUM_DLT_CORE_COMPUTE": (0.20, "DLT", "DBU"),
    "PREMIUM_DLT_ADVANCED_COMPUTE_(PHOTON)": (0.36, "DLT", "DBU"),
    "PREMIUM_SERVERLESS_REAL_TIME_INFERENCE_US_EAST": (0.07, "MODEL_SERVING", "DBU"),
}
WAREHOUSE_SKU = {"CLASSIC": "PREMIUM_SQL_COMPUTE", "PRO": "PREMIUM_SQL_PRO_COMPUTE_US_EAST",
                 "SERVERLESS": "PREMIUM_SERVERLESS_SQL_COMPUTE_US_EAST"}
#: DBU per hour of one cluster of a warehouse, by size.
WAREHOUSE_SIZES = {"2X_SMALL": 4, "X_SMALL": 6, "SMALL": 12, "MEDIUM": 24, "LARGE": 40,
                   "X_LARGE": 80, "2X_LARGE": 144, "3X_LARGE": 272, "4X_LARGE": 528}
DBR_VERSIONS = ["13.3.x-scala2.12", "14.3.x-scala2.12", "15.4.x-scala2.12", "16.4.x-scala2.12"]
DBR_ML = ["15.4.x-cpu-ml-scala2.12", "16.4.x-cpu-ml-scala2.12", "15.4.x-gpu-ml-scala2.12"]
TEAMS = ["data-eng", "analytics", "ml-platform", "finance", "marketing", "sales-ops", "security", "hr-analytics"]
TIMEZONES = [("America/New_York", -5), ("America/Los_Angeles", -8), ("Europe/London", 0),
             ("Europe/Berlin", 1), ("Asia/Kolkata", 5.5)]
FIRST = ["alice", "bob", "carla", "dev", "emma", "farid", "grace", "hiro", "ines", "jon", "kofi", "lena",
         "mateo", "nina", "omar", "priya", "quinn", "raj", "sofia", "tomas", "uma", "victor", "wei",
         "xena", "yusuf", "zoe", "arjun", "bea", "chen", "diego", "elif", "femi"]
LAST = ["smith", "garcia", "mueller", "tanaka", "okafor", "rossi", "nguyen", "kowalski", "silva", "patel",
        "cohen", "larsen", "dubois", "ivanova", "kim", "haddad", "novak", "oneill", "santos", "berg"]
DOMAIN = "acme-corp.com"


@dataclass
class User:
    """A person or service principal, with home network, timezone and activity level."""

    email: str
    user_id: str
    role: str  # engineer | analyst | data_scientist | admin | service_principal
    workspaces: list[str]
    ip_prefix: str  # home /24, e.g. "198.51.100"
    tz_offset: float
    activity: float  # relative daily activity
    user_agent: str


@dataclass
class Cluster:
    """An all-purpose cluster (job clusters are created per run in ``jobs``)."""

    cluster_id: str
    workspace_id: str
    name: str
    owner: str
    kind: str  # shared | personal
    driver_node: str
    worker_node: str
    min_workers: int
    max_workers: int  # == min_workers for fixed size
    dbr: str
    availability: str  # ON_DEMAND | SPOT_WITH_FALLBACK
    auto_termination: int
    photon: bool
    tags: dict[str, str]
    create_time: pd.Timestamp
    hours_per_day: float  # typical uptime on a working day
    data_security_mode: str
    upgrades: list[tuple[pd.Timestamp, str]] = field(default_factory=list)  # (when, new dbr)


@dataclass
class Warehouse:
    """A SQL warehouse and its typical daily statement load."""

    warehouse_id: str
    workspace_id: str
    name: str
    wtype: str  # CLASSIC | PRO | SERVERLESS
    size: str
    min_clusters: int
    max_clusters: int
    auto_stop: int
    tags: dict[str, str]
    created_by: str
    create_time: pd.Timestamp
    queries_per_day: float


@dataclass
class Table:
    """A Unity Catalog table: columns, daily volume, monitoring and sensitivity."""

    catalog: str
    schema: str
    name: str
    columns: list[tuple[str, str]]  # (name, type)
    daily_rows: float
    monitored: bool
    sensitive: bool
    table_id: str
    partition_col: str | None

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"


@dataclass
class Job:
    """A job of some archetype, with its schedule, compute and hidden traits (growth, flakiness)."""

    job_id: str
    workspace_id: str
    name: str
    archetype: str
    creator: str
    run_as: str
    tags: dict[str, str]
    schedule: str  # daily | hourly | every4h | weekly | monthly | continuous | file_arrival | adhoc
    hour: int  # UTC hour of the daily/weekly/monthly schedule
    minute: int
    cron: str | None
    trigger_type: str
    compute: str  # job_cluster | all_purpose | serverless | warehouse
    cluster_id: str | None  # all-purpose cluster (compute == all_purpose)
    warehouse_id: str | None
    node_type: str
    workers: int
    dbr: str
    photon: bool
    availability: str
    base_minutes: float
    sigma: float
    data_growth: float  # per day: the latent cause of memory pressure and slow-downs
    mem_need: float  # memory pressure at t=0, 1.0 = the nodes' limit
    flaky: float  # base probability of a transient dependency failure
    reads: list[str]
    writes: list[str]
    tasks: list[tuple[str, list[str]]]
    timeout_seconds: int
    create_time: pd.Timestamp
    max_retries: int


@dataclass
class Pipeline:
    """A DLT pipeline (billed by the hour, no job runs)."""

    pipeline_id: str
    workspace_id: str
    name: str
    sku: str
    dbu_per_hour: float
    tags: dict[str, str]
    owner: str


@dataclass
class Workspace:
    """A workspace with its size, growth rate, home timezone and optional serving endpoint."""

    workspace_id: str
    name: str
    url: str
    create_time: pd.Timestamp
    size: float
    growth: float
    tz_offset: float
    serving_endpoint: str | None = None
    serving_dbu: float = 0.0


@dataclass
class Estate:
    """Everything drawn from the seed; see the module docstring."""

    seed: int
    scale: float
    window: Window
    account_id: str
    workspaces: list[Workspace]
    users: list[User]
    clusters: list[Cluster]
    warehouses: list[Warehouse]
    jobs: list[Job]
    tables: list[Table]
    pipelines: list[Pipeline]
    price_changes: dict[str, tuple[pd.Timestamp, float]]  # sku -> (when, new price)

    @property
    def epoch(self) -> pd.Timestamp:
        """Start of the simulated period: growth is measured from here."""
        return self.window.start

    def users_in(self, workspace_id: str, roles: tuple[str, ...] | None = None) -> list[User]:
        """Users of a workspace, optionally only some roles."""
        return [u for u in self.users if workspace_id in u.workspaces and (roles is None or u.role in roles)]

    def table(self, full_name: str) -> Table:
        """The table named ``catalog.schema.name``."""
        return next(t for t in self.tables if t.full_name == full_name)

    def price(self, sku: str, ts: np.ndarray) -> np.ndarray:
        """List price in force at each timestamp (ns datetime64 array)."""
        base = SKUS[sku][0]
        if sku in self.price_changes:
            when, new = self.price_changes[sku]
            return np.where(ts >= when.to_datetime64(), new, base)
        return np.full(len(ts), base)


_WS_NAMES = ["prod-analytics", "data-platform", "ml-research", "finance-prod", "marketing-insights",
             "sales-ops", "dev-sandbox", "security-ops", "hr-analytics", "supply-chain", "customer-360",
             "iot-telemetry"]

# Table catalog: (catalog, schema, name, base rows/day, sensitive, columns)
_TABLES = [
    ("raw", "events", "clickstream", 5e6, False, "event_id:string,user_id:bigint,session_id:string,page:string,event_ts:timestamp,event_date:date,country:string,device:string"),
    ("raw", "events", "app_logs", 2e6, False, "log_id:string,service:string,level:string,message:string,ts:timestamp,log_date:date,host:string"),
    ("raw", "iot", "sensor_readings", 8e6, False, "device_id:string,reading:double,unit:string,reading_ts:timestamp,reading_date:date,site_id:int"),
    ("main", "sales", "orders", 2e6, False, "order_id:bigint,customer_id:bigint,order_ts:timestamp,order_date:date,amount:decimal(18,2),currency:string,status:string,channel:string"),
    ("main", "sales", "order_items", 6e6, False, "order_id:bigint,item_id:bigint,sku:string,qty:int,unit_price:decimal(18,2),order_date:date"),
    ("main", "sales", "customers_pii", 3e4, True, "customer_id:bigint,full_name:string,email:string,phone:string,address:string,birth_date:date,created_at:timestamp"),
    ("main", "hr", "employees_pii", 300, True, "employee_id:bigint,full_name:string,ssn:string,salary:decimal(18,2),department:string,manager_id:bigint,hire_date:date"),
    ("finance", "ledger", "payments_sensitive", 4e5, True, "payment_id:string,account_number:string,routing_number:string,amount:decimal(18,2),payment_ts:timestamp,payment_date:date,counterparty:string"),
    ("finance", "ledger", "payroll_sensitive", 2e3, True, "employee_id:bigint,period:string,gross:decimal(18,2),net:decimal(18,2),bank_account:string,paid_date:date"),
    ("finance", "reporting", "revenue_daily", 400, False, "report_date:date,region:string,product_line:string,revenue:decimal(18,2),cost:decimal(18,2),margin:double"),
    ("finance", "reporting", "gl_monthly_close", 50, False, "period:string,account:string,debit:decimal(18,2),credit:decimal(18,2),closed_at:timestamp"),
    ("analytics", "marts", "customer_ltv", 3e4, False, "customer_id:bigint,ltv:double,segment:string,churn_risk:double,updated_at:timestamp"),
    ("analytics", "marts", "daily_active_users", 30, False, "activity_date:date,product:string,dau:bigint,wau:bigint,mau:bigint"),
    ("analytics", "marts", "funnel_conversion", 200, False, "funnel_date:date,step:string,users:bigint,conversion_rate:double,campaign_id:string"),
    ("analytics", "marts", "sessions", 4e6, False, "session_id:string,user_id:bigint,start_ts:timestamp,end_ts:timestamp,session_date:date,pages:int,device:string"),
    ("marketing", "campaigns", "campaign_performance", 5e3, False, "campaign_id:string,channel:string,spend:decimal(18,2),impressions:bigint,clicks:bigint,perf_date:date"),
    ("marketing", "campaigns", "leads_pii", 2e3, True, "lead_id:bigint,email:string,phone:string,company:string,score:double,created_date:date"),
    ("ml", "features", "customer_features", 3e4, False, "customer_id:bigint,recency:double,frequency:double,monetary:double,feature_date:date"),
    ("ml", "features", "fraud_features", 4e5, False, "payment_id:string,velocity_1h:double,amount_z:double,geo_risk:double,feature_ts:timestamp,feature_date:date"),
    ("ml", "predictions", "churn_scores", 3e4, False, "customer_id:bigint,score:double,model_version:string,scored_at:timestamp"),
    ("ml", "predictions", "demand_forecast", 1e4, False, "sku:string,forecast_date:date,yhat:double,yhat_lower:double,yhat_upper:double"),
    ("main", "supply", "inventory_snapshot", 5e4, False, "sku:string,warehouse:string,on_hand:int,reserved:int,snapshot_date:date"),
    ("main", "supply", "shipments", 2e5, False, "shipment_id:string,order_id:bigint,carrier:string,shipped_ts:timestamp,ship_date:date,status:string"),
    ("main", "security", "access_reviews", 100, True, "review_id:string,principal:string,resource:string,decision:string,reviewed_at:timestamp"),
]

# Job archetypes: name -> (schedule, base minutes, sigma, workers range, compute choices, weight)
ARCHETYPES = {
    "etl_nightly": ("daily", 50, 0.45, (4, 16), {"job_cluster": 0.8, "serverless": 0.2}, 5),
    "hourly_ingest": ("hourly", 6, 0.5, (1, 3), {"serverless": 0.75, "job_cluster": 0.25}, 1),
    "ingest_4h": ("every4h", 14, 0.5, (2, 6), {"job_cluster": 0.7, "serverless": 0.3}, 2),
    "ml_training": ("weekly", 95, 0.65, (4, 12), {"job_cluster": 0.6, "all_purpose": 0.4}, 2),
    "ml_scoring": ("daily", 22, 0.5, (2, 8), {"job_cluster": 1.0}, 2),
    "streaming": ("continuous", 1440, 0.0, (1, 2), {"job_cluster": 1.0}, 0.5),
    "reporting": ("daily", 12, 0.55, (1, 1), {"warehouse": 1.0}, 3),
    "month_end_close": ("monthly", 150, 0.4, (8, 20), {"job_cluster": 1.0}, 1),
    "file_arrival": ("file_arrival", 9, 0.6, (1, 3), {"serverless": 0.5, "job_cluster": 0.5}, 1),
    "adhoc_notebook": ("adhoc", 25, 0.9, (1, 1), {"all_purpose": 1.0}, 2),
}
_ARCH_TABLES = {
    "etl_nightly": (["raw.events.clickstream", "raw.events.app_logs", "main.sales.orders"],
                    ["analytics.marts.sessions", "analytics.marts.daily_active_users", "main.sales.order_items",
                     "analytics.marts.funnel_conversion", "main.supply.shipments"]),
    "hourly_ingest": ([], ["raw.events.clickstream", "raw.events.app_logs", "raw.iot.sensor_readings"]),
    "ingest_4h": (["raw.events.app_logs"], ["main.sales.orders", "finance.ledger.payments_sensitive",
                                            "main.supply.inventory_snapshot"]),
    "ml_training": (["ml.features.customer_features", "ml.features.fraud_features"], []),
    "ml_scoring": (["ml.features.customer_features", "main.sales.orders"],
                   ["ml.predictions.churn_scores", "ml.predictions.demand_forecast", "ml.features.fraud_features",
                    "ml.features.customer_features"]),
    "streaming": (["raw.iot.sensor_readings"], ["raw.iot.sensor_readings"]),
    "reporting": (["main.sales.orders", "analytics.marts.sessions"],
                  ["finance.reporting.revenue_daily", "marketing.campaigns.campaign_performance",
                   "analytics.marts.customer_ltv"]),
    "month_end_close": (["finance.ledger.payments_sensitive", "finance.reporting.revenue_daily"],
                        ["finance.reporting.gl_monthly_close", "finance.ledger.payroll_sensitive"]),
    "file_arrival": ([], ["marketing.campaigns.leads_pii", "main.sales.customers_pii", "main.hr.employees_pii"]),
    "adhoc_notebook": (["main.sales.orders", "analytics.marts.sessions"], []),
}


def _tags(rng: np.random.Generator, team: str, untagged_p: float = 0.12) -> dict[str, str]:
    if rng.random() < untagged_p:
        return {}
    tags = {"team": team, "project": f"{team}-{rng.choice(['core', 'pipeline', 'bi', 'models', 'ops'])}",
            "cost_center": f"CC-{100 + TEAMS.index(team) * 10 + int(rng.integers(0, 3))}"}
    if rng.random() < 0.2:
        del tags["project"]
    return tags


def build_estate(seed: int, window: Window, workspaces: int, scale: float) -> Estate:
    """Draw the whole estate from ``seed``. ``scale`` multiplies entity counts (not days)."""
    rng = np.random.default_rng([seed, 1])
    account_id = uid(rng)
    wss: list[Workspace] = []
    for i in range(workspaces):
        name = _WS_NAMES[i % len(_WS_NAMES)] + ("" if i < len(_WS_NAMES) else f"-{i // len(_WS_NAMES) + 1}")
        wid = str(int(rng.integers(10**15, 9 * 10**15)))
        tz = TIMEZONES[int(rng.integers(0, len(TIMEZONES)))][1]
        ws = Workspace(wid, name, f"https://dbc-{hexid(rng, 8)}-{hexid(rng, 4)}.cloud.databricks.com",
                       window.start - pd.Timedelta(days=int(rng.integers(200, 1200))),
                       float(rng.lognormal(0, 0.45)), float(rng.uniform(0.0008, 0.005)), tz)
        if rng.random() < 0.5:
            ws.serving_endpoint = f"{rng.choice(['churn', 'fraud', 'recs', 'forecast'])}-model-endpoint"
            ws.serving_dbu = float(rng.uniform(2, 12))
        wss.append(ws)

    users = _build_users(rng, wss, scale)
    tables = []
    for c, s, n, rows, sens, cols in _TABLES:
        colspec = [tuple(col.split(":", 1)) for col in re.split(r",(?![^(]*\))", cols)]
        part = next((name for name, typ in colspec if typ == "date"), None)
        tables.append(Table(c, s, n, colspec, rows, bool(rng.random() < 0.8 or sens), sens, uid(rng), part))

    clusters: list[Cluster] = []
    warehouses: list[Warehouse] = []
    jobs: list[Job] = []
    pipelines: list[Pipeline] = []
    for ws in wss:
        team = TEAMS[int(rng.integers(0, len(TEAMS)))]
        people = [u for u in users if ws.workspace_id in u.workspaces and u.role != "service_principal"]
        sps = [u for u in users if ws.workspace_id in u.workspaces and u.role == "service_principal"]
        n_shared = max(1, round(2 * scale * ws.size))
        n_personal = max(1, round(3 * scale * ws.size))
        for k in range(n_shared + n_personal):
            shared = k < n_shared
            owner = people[int(rng.integers(0, len(people)))]
            ml = owner.role == "data_scientist" and rng.random() < 0.7
            gpu = ml and rng.random() < 0.3
            node = str(rng.choice(GPU_NODES if gpu else CPU_NODES[:9]))
            minw = int(rng.integers(1, 4)) if shared else 0 if rng.random() < 0.6 else 1
            maxw = minw + (int(rng.integers(2, 8)) if shared and rng.random() < 0.7 else 0)
            upgrades = []
            dbr = str(rng.choice(DBR_ML[:2] if ml else DBR_VERSIONS[:3]))
            if rng.random() < 0.35:
                newer = [v for v in (DBR_ML if ml else DBR_VERSIONS) if v > dbr]
                if newer:
                    upgrades.append((window.start + pd.Timedelta(hours=int(rng.integers(24 * 10, max(24 * 11, len(window.hours) - 48)))), newer[0]))
            name = (f"{team}-shared-{k + 1}" if shared
                    else f"{owner.email.split('@')[0]}'s Cluster")
            clusters.append(Cluster(
                f"{rng.integers(1000, 9999)}-{rng.integers(100000, 999999)}-{hexid(rng, 8)}", ws.workspace_id,
                name, owner.email, "shared" if shared else "personal", node, node, minw, maxw, dbr,
                "SPOT_WITH_FALLBACK" if rng.random() < 0.4 else "ON_DEMAND",
                int(rng.choice([30, 60, 120])) if rng.random() < 0.9 else 0, bool(rng.random() < 0.4),
                _tags(rng, team), window.start - pd.Timedelta(days=int(rng.integers(5, 300))),
                float(rng.uniform(6, 11) if shared else rng.uniform(2, 6)),
                "USER_ISOLATION" if shared else "SINGLE_USER", upgrades))
        n_wh = max(1, round(2 * scale * ws.size))
        for k in range(n_wh):
            wtype = str(rng.choice(["SERVERLESS", "PRO", "CLASSIC"], p=[0.5, 0.35, 0.15]))
            size = str(rng.choice(list(WAREHOUSE_SIZES), p=[0.28, 0.28, 0.2, 0.12, 0.05, 0.03, 0.02, 0.01, 0.01]))
            maxc = int(rng.choice([1, 2, 4, 8], p=[0.3, 0.35, 0.25, 0.1]))
            creator = people[int(rng.integers(0, len(people)))]
            warehouses.append(Warehouse(
                hexid(rng, 16), ws.workspace_id,
                f"{team} {['BI', 'Reporting', 'Ad hoc', 'Dashboards', 'ETL'][k % 5]} warehouse",
                wtype, size, 1, maxc, int(rng.choice([5, 10, 30, 60])), _tags(rng, team, 0.1), creator.email,
                window.start - pd.Timedelta(days=int(rng.integers(20, 400))),
                float(rng.lognormal(np.log(25), 0.5) * scale ** 0.3)))
        ws_clusters = [c for c in clusters if c.workspace_id == ws.workspace_id]
        ws_wh = [w for w in warehouses if w.workspace_id == ws.workspace_id]
        n_jobs = max(5, round(12 * scale * ws.size))
        names = list(ARCHETYPES)
        weights = np.array([ARCHETYPES[a][5] for a in names], float)
        # Every workspace has the common archetypes; the rest are drawn by weight.
        fixed = ["etl_nightly", "reporting", "ingest_4h", "adhoc_notebook", "ml_scoring"]
        for j in range(n_jobs):
            arch = fixed[j] if j < len(fixed) else str(rng.choice(names, p=weights / weights.sum()))
            jobs.append(_make_job(rng, ws, arch, people, sps, ws_clusters, ws_wh, team, window))
        if rng.random() < 0.6 or scale >= 1:
            for _ in range(max(1, round(0.6 * scale * ws.size))):
                sku = str(rng.choice(["PREMIUM_DLT_CORE_COMPUTE", "PREMIUM_DLT_ADVANCED_COMPUTE_(PHOTON)"]))
                pipelines.append(Pipeline(uid(rng), ws.workspace_id, f"{team}-dlt-{hexid(rng, 4)}", sku,
                                          float(rng.uniform(2, 10)), _tags(rng, team, 0.1),
                                          people[int(rng.integers(0, len(people)))].email))

    # List prices change once mid-period: classic jobs compute always (every estate bills it),
    # some serverless and DLT SKUs by chance.
    price_changes = {}
    third = max(1, len(window.days) // 3)

    def change_day() -> pd.Timestamp:
        return (window.start + pd.Timedelta(days=int(rng.integers(third, max(third + 1, 2 * third))))).floor("D")

    when, factor = change_day(), float(rng.choice([1.1, 1.15, 1.2]))
    for sku in ["PREMIUM_JOBS_COMPUTE", "PREMIUM_JOBS_COMPUTE_(PHOTON)"]:
        price_changes[sku] = (when, round(SKUS[sku][0] * factor, 4))
    for sku in ["PREMIUM_SERVERLESS_SQL_COMPUTE_US_EAST", "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST",
                "PREMIUM_DLT_CORE_COMPUTE"]:
        if rng.random() < 0.6:
            price_changes[sku] = (change_day(), round(SKUS[sku][0] * float(rng.choice([0.9, 1.1, 1.15])), 4))
    return Estate(seed, scale, window, account_id, wss, users, clusters, warehouses, jobs, tables,
                  pipelines, price_changes)


def _build_users(rng: np.random.Generator, wss: list[Workspace], scale: float) -> list[User]:
    roles = ["engineer", "analyst", "data_scientist", "admin"]
    n_people = max(6, round(18 * scale * max(1, len(wss)) ** 0.8))
    users: list[User] = []
    seen: set[str] = set()
    agents = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
              "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
              "databricks-cli/0.221.1 python/3.11", "dbt-databricks/1.8.3 databricks-sql-connector/3.3.0",
              "PowerBI/2.131", "Tableau/2024.2"]
    offices = ["198.51.100", "203.0.113", "192.0.2", "100.64.12", "100.64.40"]
    for i in range(n_people):
        # Redraw a taken name a few times; large estates (--scale 10) have more people than
        # first x last pairs, so a name still taken then gets a number (jane.doe2@), as
        # directory services do. (Redrawing forever never ended once the pairs ran out.)
        for _ in range(50):
            name = f"{rng.choice(FIRST)}.{rng.choice(LAST)}"
            if f"{name}@{DOMAIN}" not in seen:
                break
        email, n = f"{name}@{DOMAIN}", 1
        while email in seen:
            n += 1
            email = f"{name}{n}@{DOMAIN}"
        seen.add(email)
        role = str(rng.choice(roles, p=[0.4, 0.32, 0.2, 0.08]))
        k = 1 + int(rng.random() < 0.25)
        home = [wss[(i + j) % len(wss)].workspace_id for j in range(k)]
        tz = float(TIMEZONES[int(rng.integers(0, len(TIMEZONES)))][1])
        ua = agents[int(rng.integers(0, 3))] if role != "analyst" or rng.random() < 0.6 else agents[int(rng.integers(5, 7))]
        users.append(User(email, str(int(rng.integers(10**14, 10**15))), role, home,
                          str(rng.choice(offices)), tz, float(rng.lognormal(0, 0.4)), ua))
    # Every workspace has at least one engineer, one analyst and one admin.
    for ws in wss:
        for role in ("engineer", "analyst", "admin"):
            if not any(ws.workspace_id in u.workspaces and u.role == role for u in users):
                email = f"{role}.{ws.name}@{DOMAIN}"
                users.append(User(email, str(int(rng.integers(10**14, 10**15))), role, [ws.workspace_id],
                                  offices[0], float(ws.tz_offset), 1.0, agents[0]))
        for k in range(max(1, round(2 * scale))):
            users.append(User(uid(rng), str(int(rng.integers(10**14, 10**15))), "service_principal",
                              [ws.workspace_id], f"54.{int(rng.integers(80, 240))}.{int(rng.integers(0, 255))}",
                              0.0, 1.0, agents[3 + (k % 2)]))
    return users


def _make_job(rng: np.random.Generator, ws: Workspace, arch: str, people: list[User], sps: list[User],
              clusters: list[Cluster], whs: list[Warehouse], team: str, window: Window) -> Job:
    schedule, base, sigma, (wlo, whi), compute_p, _ = ARCHETYPES[arch]
    compute = str(rng.choice(list(compute_p), p=list(compute_p.values())))
    owner = people[int(rng.integers(0, len(people)))]
    run_as = sps[int(rng.integers(0, len(sps)))].email if sps and arch != "adhoc_notebook" and rng.random() < 0.75 else owner.email
    ml = arch.startswith("ml_")
    # Batch jobs run on the larger nodes; GPUs only for some ML jobs.
    big = ["m5d.2xlarge", "m5d.4xlarge", "r5d.2xlarge", "r5d.4xlarge", "i3.2xlarge", "c5d.4xlarge"]
    node = str(rng.choice((GPU_NODES if rng.random() < 0.3 else big[2:5]) if ml else big))
    cluster = None
    if compute == "all_purpose":
        cluster = clusters[int(rng.integers(0, len(clusters)))]
        node = cluster.worker_node
    wh = whs[int(rng.integers(0, len(whs)))] if compute == "warehouse" else None
    hour = {"daily": int(rng.choice([0, 1, 2, 3, 4, 5, 6, 22, 23])), "weekly": int(rng.integers(0, 24)),
            "monthly": int(rng.integers(1, 6))}.get(schedule, 0)
    if arch == "reporting":
        hour = int(rng.integers(4, 9))
    minute = int(rng.choice([0, 0, 15, 30, 45]))
    cron = {"daily": f"0 {minute} {hour} * * ?", "hourly": f"0 {minute} * * * ?",
            "every4h": f"0 {minute} */4 * * ?", "weekly": f"0 {minute} {hour} ? * MON",
            "monthly": f"0 {minute} {hour} L * ?"}.get(schedule)
    trigger = {"continuous": "CONTINUOUS", "file_arrival": "FILE_ARRIVAL", "adhoc": "ONETIME",
               "every4h": "PERIODIC"}.get(schedule, "CRON")
    reads_pool, writes_pool = _ARCH_TABLES[arch]
    reads = list(rng.choice(reads_pool, size=min(len(reads_pool), int(rng.integers(1, 3))), replace=False)) if reads_pool else []
    writes = [str(rng.choice(writes_pool))] if writes_pool else []
    n_tasks = int(rng.integers(1, 6)) if arch in ("etl_nightly", "month_end_close", "ml_training") else int(rng.integers(1, 3))
    task_names = ["ingest", "validate", "transform", "aggregate", "publish", "train", "evaluate", "score"]
    keys = [f"{task_names[i % len(task_names)]}_{i + 1}" for i in range(n_tasks)]
    tasks = [(k, [keys[i - 1]] if i > 0 else []) for i, k in enumerate(keys)]
    base_minutes = base * float(rng.lognormal(0, 0.35)) * (1 if schedule == "continuous" else ws.size ** 0.3)
    return Job(
        str(int(rng.integers(10**14, 10**15))), ws.workspace_id,
        f"{team}_{arch}_{hexid(rng, 4)}" if arch != "adhoc_notebook" else f"{owner.email.split('@')[0]} ad hoc run",
        arch, owner.email, run_as, _tags(rng, team), schedule, hour, minute, cron, trigger, compute,
        cluster.cluster_id if cluster else None, wh.warehouse_id if wh else None, node,
        int(rng.integers(wlo, whi + 1)),
        str(rng.choice(DBR_ML[:2] if ml else DBR_VERSIONS[1:])), bool(rng.random() < 0.45),
        "SPOT_WITH_FALLBACK" if rng.random() < 0.35 else "ON_DEMAND", base_minutes, sigma,
        float(rng.uniform(0.0, 0.004)), float(rng.uniform(0.3, 0.75)), float(rng.beta(1, 60)),
        [str(r) for r in reads], writes, tasks,
        int(rng.choice([0, 3600 * 4, 3600 * 8])) if schedule != "continuous" else 0,
        window.start - pd.Timedelta(days=int(rng.integers(3, 400))), int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2])))
