"""Serving latency and throughput: `health-monitor serve` against `mlflow models serve`, one run.

Both servers host the same registered champion version; the client sends the same single-record
request to each (our `/job-failure-risk` and `/cost-anomaly` with the record's features, MLflow's
`/invocations` with `dataframe_records`), over keep-alive HTTP on 127.0.0.1:

* fixed rate: an open-loop schedule at ``--rate`` requests/s for ``--seconds``, latency measured
  from the scheduled send time (so a stall is not hidden by the client waiting: no coordinated
  omission), p50 / p99 / max;
* saturation: ``--clients`` closed-loop clients as fast as answers come, for ``--seconds``:
  requests/s of one server process.

Each server's CPU-seconds (from /proc) per 1,000 requests is printed beside the wall figures,
with the load average: the machine may be shared, CPU-seconds are the stable figure.

Needs a data directory with trained champions (e.g. after `make demo`, or
`health-monitor train --model job_failure_predictor` and `--model cost_anomaly_detector`):

    .venv/bin/python bench/bench_serving.py --data-dir .health-monitor
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ENDPOINTS = {"job-failure-risk": "job_failure_predictor", "cost-anomaly": "cost_anomaly_detector"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def _process_tree_cpu(pid: int) -> float:
    """CPU-seconds of a process and all its live descendants (mlflow's server runs gunicorn/uvicorn
    workers under a parent)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += _cpu_seconds(p)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return total


def _wait_ready(port: int, path: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode} (stderr in the data dir)")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server on port {port} did not answer {path} within {timeout_s:.0f} s")


class Target:
    """One server and the request it is sent."""

    def __init__(self, label: str, port: int, path: str, body: bytes, headers: dict[str, str],
                 proc: subprocess.Popen) -> None:
        self.label, self.port, self.path, self.body, self.headers, self.proc = label, port, path, body, headers, proc

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def call(self, conn: http.client.HTTPConnection) -> None:
        conn.request("POST", self.path, body=self.body, headers=self.headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"{self.label}: HTTP {resp.status}: {data[:300]!r}")


def fixed_rate(t: Target, rate: float, seconds: float) -> dict[str, float]:
    conn = t.connect()
    for _ in range(20):  # warm-up: first requests pay imports and caches
        t.call(conn)
    n = int(rate * seconds)
    lat = []
    cpu0 = _process_tree_cpu(t.proc.pid)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        t.call(conn)
        lat.append((time.perf_counter() - due) * 1000.0)
    cpu = _process_tree_cpu(t.proc.pid) - cpu0
    lat.sort()
    return {"n": n, "p50_ms": lat[len(lat) // 2], "p99_ms": lat[min(int(len(lat) * 0.99), len(lat) - 1)],
            "max_ms": lat[-1], "mean_ms": statistics.fmean(lat), "cpu_s_per_1k": 1000.0 * cpu / n}


def saturation(t: Target, clients: int, seconds: float) -> dict[str, float]:
    counts = [0] * clients
    stop = time.perf_counter() + seconds
    cpu0 = _process_tree_cpu(t.proc.pid)

    def worker(k: int) -> None:
        conn = t.connect()
        while time.perf_counter() < stop:
            t.call(conn)
            counts[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu = _process_tree_cpu(t.proc.pid) - cpu0
    total = sum(counts)
    return {"n": total, "req_per_s": total / wall, "cpu_s_per_1k": 1000.0 * cpu / max(total, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    data_dir = Path(args.data_dir).resolve()
    venv_bin = Path(sys.executable).parent
    token = secrets.token_urlsafe(24)
    # mlflow models serve execs `uvicorn` by name: the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "HEALTH_MONITOR_API_TOKEN": token, "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir}/mlflow/mlflow.db",
           "MLFLOW_REGISTRY_URI": f"sqlite:///{data_dir}/mlflow/mlflow.db"}
    procs: list[subprocess.Popen] = []
    try:
        port = _free_port()
        ours = subprocess.Popen([str(venv_bin / "health-monitor"), "--data-dir", str(data_dir), "serve",
                                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(data_dir / "bench_serving.stderr", "w"))  # noqa: SIM115
        procs.append(ours)
        _wait_ready(port, "/health", ours)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/openapi.json")
        doc = json.loads(c.getresponse().read())
        c.request("GET", "/health")
        served = json.loads(c.getresponse().read())["served"]
        results = []
        for ep, model in ENDPOINTS.items():
            if ep not in served:
                raise SystemExit(f"{ep} is not served: train {model} first")
            ex = doc["paths"][f"/{ep}"]["post"]["requestBody"]["content"]["application/json"]["examples"]
            record = ex["by_features"]["value"]["records"][0]
            mport = _free_port()
            mlf = subprocess.Popen(
                [str(venv_bin / "mlflow"), "models", "serve", "-m", f"models:/health_monitor.{model}/{served[ep]}",
                 "--env-manager", "local", "-p", str(mport), "-h", "127.0.0.1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            procs.append(mlf)
            _wait_ready(mport, "/ping", mlf)
            targets = [
                Target(f"health-monitor /{ep}", port, f"/{ep}", json.dumps({"records": [record]}).encode(),
                       {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, ours),
                Target(f"mlflow models serve ({model} v{served[ep]})", mport, "/invocations",
                       json.dumps({"dataframe_records": [record]}).encode(), {"Content-Type": "application/json"}, mlf),
            ]
            for t in targets:
                fr = fixed_rate(t, args.rate, args.seconds)
                sat = saturation(t, args.clients, args.seconds)
                results.append((t.label, fr, sat))
            os.killpg(mlf.pid, signal.SIGTERM)
            mlf.wait(30)
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"\nload average {' '.join(load)}; {os.cpu_count()} cores; rate {args.rate:g} req/s for "
              f"{args.seconds:g} s; saturation with {args.clients} keep-alive clients (Python client on the same machine)\n")
        print("| server | p50 ms | p99 ms | max ms | CPU s / 1k req (at rate) | saturation req/s | CPU s / 1k req (saturated) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, fr, sat in results:
            print(f"| {label} | {fr['p50_ms']:.2f} | {fr['p99_ms']:.2f} | {fr['max_ms']:.1f} | "
                  f"{fr['cpu_s_per_1k']:.2f} | {sat['req_per_s']:.0f} | {sat['cpu_s_per_1k']:.2f} |")
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(p.pid, signal.SIGTERM) if p is not procs[0] else p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
