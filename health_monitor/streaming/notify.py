"""Webhook notifier: POST each new alert (and each severity escalation) as JSON, at least once.

The notifier only reads ``monitor.alerts``; what it has delivered lives in a small state file of
its own (one per webhook URL, one writer at a time, replaced atomically). A delivery is recorded
only after the receiver answered 2xx, so a crash between the POST and the record re-sends that
alert on the next run (at-least-once; the ``Idempotency-Key`` header lets receivers drop the
duplicate), and nothing is ever skipped: a delivery that keeps failing stops the run with an error
instead of moving past it.

The state is the set of delivered (alert_id, severity) pairs rather than a timestamp cursor: the
stream's queries commit alerts concurrently, so an ``updated_at`` cursor could pass over a row that
commits late. Alerts are delivered oldest first (``detected_at``, then window, then ``alert_id``).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import ipaddress
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from health_monitor import progress
from health_monitor.errors import HealthMonitorError
from health_monitor.rules.engine import SEVERITIES
from health_monitor.streaming.tables import ALERTS

if TYPE_CHECKING:
    from health_monitor.runtime import Lakehouse

#: Statuses worth retrying: the receiver may succeed later. Other 4xx are our payload's fault.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "databricks-health-monitor-notifier/1"
#: Header carrying ``sha256=<hex HMAC of "<timestamp>.<body>">`` when a signing secret is set.
SIGNATURE_HEADER = "X-Health-Monitor-Signature"
TIMESTAMP_HEADER = "X-Health-Monitor-Timestamp"
#: Comma-separated hosts or networks (CIDR) a webhook may reach although private, e.g. an on-prem
#: receiver: ``HEALTH_MONITOR_WEBHOOK_ALLOW=10.1.2.0/24,hooks.corp.local``.
ALLOW_ENV = "HEALTH_MONITOR_WEBHOOK_ALLOW"
#: Cloud instance-metadata endpoints: never a webhook, whatever is allowed (they hand out credentials).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254"))


class DeliveryError(HealthMonitorError):
    """A webhook delivery that failed for good (after retries, or rejected with a 4xx)."""


def state_path(settings: Any, url: str) -> Path:
    """The delivery state file of one webhook URL (URLs may hold secrets: only a hash is used)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(settings.data_dir) / "notify" / f"webhook-{digest}.json"


@contextmanager
def _state_lock(path: Path) -> Iterator[None]:
    """One notifier per webhook at a time: two would both deliver and race on the state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HealthMonitorError(
                "another 'alerts notify' is already delivering to this webhook; stop it first") from None
        yield
    finally:
        os.close(fd)


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"delivered": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HealthMonitorError(f"cannot read notifier state {path}: {exc}; "
                                 "delete it to re-deliver every alert") from None
    state.setdefault("delivered", {})
    return state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    """Write-then-rename so a crash leaves the previous state, never a torn file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True, indent=1))
    os.replace(tmp, path)


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "isoformat"):
        ts = v if getattr(v, "tzinfo", None) else v.replace(tzinfo=UTC)
        return ts.isoformat().replace("+00:00", "Z")
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return v


def payload(alert: dict[str, Any], event: str, previous_severity: str | None = None) -> dict[str, Any]:
    """The JSON body POSTed for one alert event."""
    body = {
        "event": event,
        "alert": {c: _json_value(alert.get(c)) for c in ALERTS.column_names},
        "text": f"[{alert['severity']}] {alert['summary']}",
    }
    if previous_severity:
        body["previous_severity"] = previous_severity
    return body


def post_with_retries(url: str, body: dict[str, Any], idempotency_key: str, max_attempts: int = 5,
                      backoff_s: float = 0.5, max_backoff_s: float = 30.0, timeout_s: float = 10.0,
                      sleep: Callable[[float], None] = time.sleep, session: requests.Session | None = None,
                      signing_secret: str | None = None) -> int:
    """POST ``body`` until a 2xx, retrying transient failures with exponential backoff.

    Redirects are not followed (a 3xx could send alert bodies to another host); they fail the
    delivery like a 4xx. With ``signing_secret`` each request carries an HMAC signature header.
    Returns the number of attempts used. Raises :class:`DeliveryError` on a non-retryable answer or
    when ``max_attempts`` are used up.
    """
    http = session or requests
    data = json.dumps(body).encode()
    last = ""
    for attempt in range(1, max_attempts + 1):
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": idempotency_key}
        if signing_secret:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(signing_secret, stamp, data)
        try:
            resp = http.post(url, data=data, headers=headers, timeout=timeout_s, allow_redirects=False)
            if 200 <= resp.status_code < 300:
                return attempt
            last = f"HTTP {resp.status_code}"
            if 300 <= resp.status_code < 400:
                raise DeliveryError(f"webhook {redact_url(url)} answered a redirect ({last}) to "
                                    f"{redact_url(resp.headers.get('Location', '?'))}; redirects are not "
                                    "followed: configure the final URL")
            if resp.status_code not in RETRYABLE_STATUS:
                raise DeliveryError(f"webhook {redact_url(url)} rejected alert delivery with {last}: "
                                    "fix the receiver or the URL, then rerun")
        except requests.RequestException as exc:
            last = type(exc).__name__
        if attempt < max_attempts:
            sleep(min(max_backoff_s, backoff_s * 2 ** (attempt - 1)))
    raise DeliveryError(f"webhook {redact_url(url)} failed {max_attempts} times (last: {last}); "
                        "undelivered alerts stay queued for the next run")


def redact_url(url: str) -> str:
    """``url`` fit for a message or log line: user-info, query values and fragment become ``***``.

    Tokens live in all three (``https://user:token@host``, ``?token=...``, ``#access_token=...``).
    Never raises: text that does not parse as a URL is reduced to its scheme.
    """
    try:
        parts = urlsplit(str(url))
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        if parts.query and not query:
            query = "***"
        return urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))
    except ValueError:
        scheme = str(url).split(":", 1)[0] if ":" in str(url) else ""
        return f"{scheme}:***" if scheme.isalnum() else "***"




def allowed_from_env() -> list[str]:
    """The allow-list of private hosts or networks from ``$HEALTH_MONITOR_WEBHOOK_ALLOW``."""
    return [p.strip() for p in os.environ.get(ALLOW_ENV, "").split(",") if p.strip()]


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


def _is_allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: list[str]) -> bool:
    for entry in allow:
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name entry that is not this host
    return False


def check_webhook_url(url: str, allow_private_network: bool = False, allow: list[str] | None = None,
                      resolver: Resolver = _resolve) -> list[str]:
    """Refuse a webhook URL that could reach this machine, its network or the cloud metadata service.

    The host is resolved (``resolver``, so tests can control DNS) and every address it resolves to
    must be public, unless ``allow_private_network`` is set or the host or one of its networks is in
    ``allow`` (default ``$HEALTH_MONITOR_WEBHOOK_ALLOW``). Metadata endpoints are refused always.
    Returns the addresses checked. Raises :class:`HealthMonitorError` with the URL redacted.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise HealthMonitorError(f"webhook URL {shown} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise HealthMonitorError(f"webhook URL must start with http:// or https://, got {shown}")
    host = parts.hostname
    if not host:
        raise HealthMonitorError(f"webhook URL {shown} has no host")
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address needs no DNS
    except ValueError:
        addresses = None
    try:
        addresses = addresses or resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise HealthMonitorError(f"cannot resolve the webhook host of {shown} ({exc}); check the URL") from None
    if not addresses:
        raise HealthMonitorError(f"the webhook host of {shown} resolves to no address; check the URL")
    allow = allowed_from_env() if allow is None else allow
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        if address in METADATA_ADDRESSES:
            raise HealthMonitorError(f"webhook URL {shown} points at a cloud metadata address ({address}); refused")
        if address.is_global and not address.is_multicast:
            continue
        if allow_private_network or _is_allowed(host, address, allow):
            continue
        kind = ("loopback" if address.is_loopback else "link-local" if address.is_link_local
                else "private" if address.is_private else "non-public")
        raise HealthMonitorError(
            f"webhook URL {shown} resolves to {kind} address {address}; pass --allow-private-network "
            f"or list the host in ${ALLOW_ENV} if this receiver is meant to be on your network")
    return addresses


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``.

    Receivers recompute it with the shared secret and the ``X-Health-Monitor-Timestamp`` header, and
    reject a stale timestamp to stop replays.
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def pending_events(alerts: list[dict[str, Any]], delivered: dict[str, str],
                   min_severity: str = "LOW") -> list[tuple[str, dict[str, Any], str | None]]:
    """(event, alert, previous severity) to deliver, oldest first.

    ``alert.new`` for an alert never delivered (at or above ``min_severity``), ``alert.escalated``
    when a delivered alert's severity rose since.
    """
    floor = SEVERITIES.index(min_severity)
    out = []
    for a in sorted(alerts, key=lambda r: (str(r["detected_at"]), str(r.get("window_start")), r["alert_id"])):
        level = SEVERITIES.index(a["severity"])
        if level < floor:
            continue
        prev = delivered.get(a["alert_id"])
        if prev is None:
            out.append(("alert.new", a, None))
        elif level > SEVERITIES.index(prev):
            out.append(("alert.escalated", a, prev))
    return out


def notify_new_alerts(lake: Lakehouse, url: str, min_severity: str = "LOW", max_attempts: int = 5,
                      backoff_s: float = 0.5, timeout_s: float = 10.0,
                      sleep: Callable[[float], None] = time.sleep, allow_private_network: bool = False,
                      signing_secret: str | None = None) -> int:
    """Deliver every new alert and severity escalation to ``url``; returns how many were delivered.

    Safe to run repeatedly (``alerts notify --once`` from cron) or in a loop: each run delivers
    what the previous runs have not, in order, and records each delivery only after a 2xx. The URL
    is checked by :func:`check_webhook_url` first; ``signing_secret`` adds an HMAC signature header.
    """
    check_webhook_url(url, allow_private_network=allow_private_network)
    if min_severity not in SEVERITIES:
        raise HealthMonitorError(f"unknown severity {min_severity!r} (expected one of {', '.join(SEVERITIES)})")
    if not lake.exists(ALERTS.name, "monitor"):
        return 0
    path = state_path(lake.settings, url)
    with _state_lock(path):
        state = _load_state(path)
        delivered: dict[str, str] = state["delivered"]
        alerts = [r.asDict() for r in lake.read(ALERTS.name, "monitor").collect()]
        events = pending_events(alerts, delivered, min_severity)
        sent = 0
        with requests.Session() as session:
            for event, alert, prev in events:
                key = f"{alert['alert_id']}:{alert['severity']}"
                attempts = post_with_retries(url, payload(alert, event, prev), key, max_attempts=max_attempts,
                                             backoff_s=backoff_s, timeout_s=timeout_s, sleep=sleep,
                                             session=session, signing_secret=signing_secret)
                delivered[alert["alert_id"]] = alert["severity"]
                state["last_delivered_at"] = datetime.now(UTC).isoformat()
                _save_state(path, state)  # the cursor moves only after the receiver said 2xx
                sent += 1
                if attempts > 1:
                    progress.info(f"delivered {alert['alert_id']} after {attempts} attempts")
        # Forget alerts that left the table (a reset), so the state does not grow forever.
        live = {a["alert_id"] for a in alerts}
        gone = [k for k in delivered if k not in live]
        if gone:
            for k in gone:
                del delivered[k]
            _save_state(path, state)
        return sent
