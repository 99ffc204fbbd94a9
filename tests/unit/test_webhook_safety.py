"""Webhook safety: address refusals through a resolver we control, no redirects, redaction, HMAC.

Refusals never send a packet: the resolver is a dict. Live deliveries go to receivers on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from health_monitor.errors import HealthMonitorError
from health_monitor.streaming import notify
from health_monitor.streaming.notify import DeliveryError, check_webhook_url, post_with_retries, redact_url

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "metadata.internal": ["169.254.169.254"],
    "loop.example.com": ["127.0.0.1"],
    "lan.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.216.34", "192.168.1.5"],  # one private answer is enough to refuse
    "v6loop.example.com": ["::1"],
    "mapped.example.com": ["::ffff:169.254.169.254"],
    "linklocal.example.com": ["169.254.10.10"],
    "cgnat.example.com": ["100.64.0.1"],
}


def resolver(host: str, port: int) -> list[str]:
    if host in DNS:
        return DNS[host]
    raise OSError("Name or service not known")


@pytest.fixture(autouse=True)
def no_env_allow_list(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(notify.ALLOW_ENV, raising=False)


def test_public_receiver_is_accepted() -> None:
    assert check_webhook_url("https://hooks.example.com/x", resolver=resolver) == ["93.184.216.34"]


@pytest.mark.parametrize(("url", "why"), [
    ("http://metadata.internal/latest/meta-data/", "metadata"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://mapped.example.com/", "metadata"),
    ("http://loop.example.com:8080/", "loopback"),
    ("http://v6loop.example.com/", "loopback"),
    ("http://lan.example.com/", "private"),
    ("http://mixed.example.com/", "private"),
    ("http://linklocal.example.com/", "link-local"),
    ("http://cgnat.example.com/", "non-public"),
])
def test_non_public_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(HealthMonitorError, match=why):
        check_webhook_url(url, resolver=resolver)


def test_private_receivers_can_be_allowed_but_metadata_never() -> None:
    assert check_webhook_url("http://lan.example.com/", allow_private_network=True, resolver=resolver)
    assert check_webhook_url("http://lan.example.com/", allow=["10.0.0.0/8"], resolver=resolver)
    assert check_webhook_url("http://loop.example.com/", allow=["loop.example.com"], resolver=resolver)
    with pytest.raises(HealthMonitorError, match="private"):
        check_webhook_url("http://lan.example.com/", allow=["192.168.0.0/16", "other.host"], resolver=resolver)
    with pytest.raises(HealthMonitorError, match="metadata"):
        check_webhook_url("http://metadata.internal/", allow_private_network=True, resolver=resolver)


def test_allow_list_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(notify.ALLOW_ENV, " 10.1.0.0/16 , x.example ")
    assert check_webhook_url("http://lan.example.com/", resolver=resolver)


@pytest.mark.parametrize("url", [
    "ftp://user:s3cret@hooks.example.com/?token=t0ken",
    "http://user:s3cret@nowhere.invalid/?token=t0ken",
    "http://user:s3cret@lan.example.com/?token=t0ken#s3cret",
    "http://[::1/?token=t0ken",
    "https://user:s3cret@/?token=t0ken",
])
def test_errors_never_echo_credentials_or_tokens(url: str) -> None:
    with pytest.raises(HealthMonitorError) as err:
        check_webhook_url(url, resolver=resolver)
    message = str(err.value)
    assert "s3cret" not in message and "t0ken" not in message
    assert "\n" not in message


def test_redact_url() -> None:
    assert redact_url("https://u:p@h.example:8443/a/b?token=x&y=2#frag") == "https://***@h.example:8443/a/b?token=***&y=***#***"
    assert redact_url("https://h.example/hook") == "https://h.example/hook"
    assert redact_url("https://h.example/hook?rawsecret") == "https://h.example/hook?rawsecret=***"


class Server:
    """A receiver on 127.0.0.1 that answers ``status`` (with ``location`` for redirects)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.close()


def test_redirects_are_not_followed(servers: list[Server]) -> None:
    second = Server()
    first = Server(status=307, location=second.url + "?token=t0ken")
    servers += [first, second]
    with pytest.raises(DeliveryError, match="redirect") as err:
        post_with_retries(first.url, {"a": 1}, "k", sleep=lambda s: None)
    assert len(first.requests) == 1 and second.requests == []
    assert "t0ken" not in str(err.value)


def test_hmac_signature_lets_the_receiver_verify_the_sender(servers: list[Server]) -> None:
    server = Server()
    servers.append(server)
    assert post_with_retries(server.url, {"alert": "x"}, "k", signing_secret="shh") == 1
    headers, body = server.requests[0]
    stamp = headers[notify.TIMESTAMP_HEADER]
    expected = "sha256=" + hmac.new(b"shh", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[notify.SIGNATURE_HEADER], expected)
    assert json.loads(body) == {"alert": "x"}
    # Without a secret no signature is sent (receivers that do not verify are unaffected).
    post_with_retries(server.url, {"alert": "y"}, "k2")
    assert notify.SIGNATURE_HEADER not in server.requests[1][0]


def test_cli_refuses_a_metadata_webhook_in_one_redacted_line_before_spark(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from health_monitor import runtime
    from health_monitor.cli import main

    url = "http://admin:s3cret@169.254.169.254/latest/meta-data/?token=t0ken"
    assert main(["--data-dir", str(tmp_path), "alerts", "notify", "--webhook-url", url, "--once",
                 "--allow-private-network"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: webhook URL http://***@169.254.169.254/latest/meta-data/?token=*** points at a "
                   "cloud metadata address (169.254.169.254); refused")
    assert runtime._SPARK is None
