"""Webhook notifier against a real local HTTP server: retries, backoff, at-least-once, no loss."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from health_monitor.cli import Context, build_parser
from health_monitor.errors import HealthMonitorError
from health_monitor.rules import load_rules
from health_monitor.streaming import notify
from health_monitor.streaming.alerts import apply_alerts, make_alerts
from health_monitor.streaming.notify import DeliveryError, notify_new_alerts, state_path


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers ``fail_status`` to the next ``fail_next`` requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []  # every request, failed ones included
        self.delivered: list[dict] = []  # bodies answered 2xx
        self.fail_next = 0
        self.fail_status = 503
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append({"body": body, "key": self.headers["Idempotency-Key"]})
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(receiver.fail_status)
                else:
                    receiver.delivered.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        return [b["alert"]["alert_id"] for b in self.delivered]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:  # noqa: ANN001
    monkeypatch.setenv(notify.ALLOW_ENV, "127.0.0.1")  # the receiver is on loopback, refused by default
    r = Receiver()
    yield r
    r.close()


def _window(ws: str, hour: int, cost: float) -> dict:
    start = pd.Timestamp("2026-11-26 00:00") + pd.Timedelta(hours=hour)
    return {"entity_type": "workspace", "entity_id": ws, "workspace_id": ws, "window_start": start,
            "window_end": start + pd.Timedelta(hours=1), "value": cost, "expected": 100.0, "score": 0.9,
            "model_name": "cost_online", "model_version": "1", "evidence": ["zscore_7d=6"],
            "cost_usd": cost, "baseline_7d": 100.0, "ratio_7d": cost / 100.0}


def _apply(lake, rows: list[dict], batch_id: int) -> None:  # noqa: ANN001
    scored = pd.DataFrame(rows)
    hits = load_rules(None).evaluate("cost", scored)
    apply_alerts(lake, make_alerts(scored, hits, "cost"), batch_id, "notify-test")


def test_retries_with_backoff_escalations_and_at_least_once(lake, receiver, monkeypatch, capsys) -> None:  # noqa: ANN001
    _apply(lake, [_window("ws-a", 10, 500.0), _window("ws-b", 11, 600.0), _window("ws-c", 12, 700.0)], 0)
    sleeps: list[float] = []

    # The receiver is down for the first two attempts: the first alert goes through on the third.
    receiver.fail_next = 2
    assert notify_new_alerts(lake, receiver.url, sleep=sleeps.append) == 3
    assert len(receiver.requests) == 5 and sleeps == [0.5, 1.0]  # exponential backoff
    assert [b["alert"]["entity_id"] for b in receiver.delivered] == ["ws-a", "ws-b", "ws-c"]
    assert {b["event"] for b in receiver.delivered} == {"alert.new"}
    first = receiver.delivered[0]
    assert first["alert"]["severity"] == "HIGH" and first["alert"]["window_start"] == "2026-11-26T10:00:00Z"
    assert first["text"].startswith("[HIGH] Workspace ws-a spent $500")
    assert receiver.requests[0]["key"] == f"{first['alert']['alert_id']}:HIGH"
    assert "secret" not in state_path(lake.settings, receiver.url).read_text()

    # Nothing new: nothing sent.
    assert notify_new_alerts(lake, receiver.url, sleep=sleeps.append) == 0
    assert len(receiver.requests) == 5

    # ws-b's incident continues with $30k at risk: one escalation event, not a new alert.
    _apply(lake, [_window("ws-b", 12, 30_000.0), _window("ws-d", 13, 800.0)], 1)
    receiver.delivered.clear()
    saves = {"n": 0}
    real_save = notify._save_state

    def crash_after_first_post(path, state) -> None:  # noqa: ANN001
        saves["n"] += 1
        if saves["n"] == 1:
            raise RuntimeError("killed between the POST and the cursor commit")
        real_save(path, state)

    monkeypatch.setattr(notify, "_save_state", crash_after_first_post)
    with pytest.raises(RuntimeError):
        notify_new_alerts(lake, receiver.url, sleep=sleeps.append)
    monkeypatch.setattr(notify, "_save_state", real_save)
    crashed = list(receiver.delivered)
    assert len(crashed) == 1
    # The rerun re-sends the unrecorded delivery (at-least-once) and then the rest: nothing skipped.
    assert notify_new_alerts(lake, receiver.url, sleep=sleeps.append) == 2
    events = [(b["event"], b["alert"]["entity_id"], b["alert"]["severity"], b.get("previous_severity"))
              for b in receiver.delivered]
    assert events[0] == events[1]  # the redelivery
    assert sorted(set(events)) == [("alert.escalated", "ws-b", "CRITICAL", "HIGH"),
                                   ("alert.new", "ws-d", "HIGH", None)]

    # A receiver that stays down: the run fails after max_attempts and records nothing.
    _apply(lake, [_window("ws-e", 20, 900.0)], 2)
    before = state_path(lake.settings, receiver.url).read_text()
    receiver.fail_next = 10
    with pytest.raises(DeliveryError, match=r"failed 3 times \(last: HTTP 503\)"):
        notify_new_alerts(lake, receiver.url, max_attempts=3, sleep=sleeps.append)
    assert state_path(lake.settings, receiver.url).read_text() == before
    # A 4xx is not retried.
    receiver.fail_next, receiver.fail_status = 1, 400
    n = len(receiver.requests)
    with pytest.raises(DeliveryError, match="rejected alert delivery with HTTP 400"):
        notify_new_alerts(lake, receiver.url, sleep=sleeps.append)
    assert len(receiver.requests) == n + 1

    # Through the CLI once the receiver is back: the queued alert is delivered.
    receiver.fail_next = 0
    args = build_parser().parse_args(["alerts", "notify", "--webhook-url", receiver.url, "--once"])
    ctx = Context(settings=lake.settings)
    ctx.__dict__["lake"] = lake
    assert args.func(args, ctx) == 0
    assert capsys.readouterr().out.strip() == "delivered 1 alert event(s)"
    assert receiver.delivered[-1]["alert"]["entity_id"] == "ws-e"


def test_bad_url_and_severity_are_one_line_errors(lake, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(notify.ALLOW_ENV, "127.0.0.1")
    with pytest.raises(HealthMonitorError, match="must start with http"):
        notify_new_alerts(lake, "ftp://example")
    with pytest.raises(HealthMonitorError, match="unknown severity"):
        notify_new_alerts(lake, "http://127.0.0.1:9/", min_severity="URGENT")
    # No alerts table yet: nothing to deliver, and nothing is created.
    assert notify_new_alerts(lake, "http://127.0.0.1:9/") == 0
    assert not lake.exists("alerts", "monitor")


def test_min_severity_holds_back_low_alerts_until_they_escalate() -> None:
    alerts = [
        {"alert_id": "a", "severity": "LOW", "detected_at": 1, "window_start": 1},
        {"alert_id": "b", "severity": "HIGH", "detected_at": 2, "window_start": 1},
        {"alert_id": "c", "severity": "CRITICAL", "detected_at": 0, "window_start": 1},
    ]
    events = notify.pending_events(alerts, {"b": "MEDIUM", "c": "CRITICAL"}, min_severity="MEDIUM")
    assert [(e, a["alert_id"], p) for e, a, p in events] == [("alert.escalated", "b", "MEDIUM")]
