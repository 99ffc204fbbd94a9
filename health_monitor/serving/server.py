"""Starting the server: the token, the bind address rules, uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
from pathlib import Path

from health_monitor.errors import HealthMonitorError
from health_monitor.runtime import Lakehouse
from health_monitor.serving.app import ServerConfig, create_app
from health_monitor.serving.models import ModelSet

log = logging.getLogger(__name__)

TOKEN_ENV = "HEALTH_MONITOR_API_TOKEN"


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def resolve_token(lake: Lakehouse, host: str, token_file: str | None) -> tuple[str, str]:
    """The bearer token and where it came from.

    Order: ``--token-file``, ``$HEALTH_MONITOR_API_TOKEN``; on a loopback host without either, a
    random token is generated and written to ``<data dir>/serving/token`` (mode 0600), so a local
    server is never open even to other users of the machine. A non-loopback host needs a token.
    """
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise HealthMonitorError(f"cannot read token file {path}: {exc.strerror}") from None
        if len(token) < 16:
            raise HealthMonitorError(f"token in {path} is shorter than 16 characters: use a random one")
        return token, f"token file {path}"
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        if len(token) < 16:
            raise HealthMonitorError(f"${TOKEN_ENV} is shorter than 16 characters: use a random one")
        return token, f"${TOKEN_ENV}"
    if not is_loopback(host):
        raise HealthMonitorError(
            f"refusing to serve on {host} without a token: set ${TOKEN_ENV} or pass --token-file "
            "(only loopback addresses get a generated token)")
    path = lake.settings.data_dir / "serving" / "token"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip(), f"generated, in {path}"


def serve(lake: Lakehouse, host: str = "127.0.0.1", port: int = 8080, token_file: str | None = None,
          reload_s: float = 30.0, refresh_s: float = 300.0) -> None:
    """Load the champions and serve until SIGTERM / Ctrl-C (which drain the inference log)."""
    import uvicorn

    token, source = resolve_token(lake, host, token_file)
    models = ModelSet(lake)
    changes = models.reload()
    for ep in models.endpoints:
        state = (f"{models.served[ep].model_name} v{models.served[ep].version}" if ep in models.served
                 else f"not served: {models.missing.get(ep, '?')}")
        print(f"  POST /{ep:<20} {state}")
    if not models.served:
        print("no model is trained yet: the endpoints answer 503 until 'health-monitor train' registers "
              "champions (the server picks them up by itself)")
    print(f"token: {source}; listening on http://{host}:{port} (OpenAPI at /openapi.json)")
    log.info("initial load: %s", changes)
    app = create_app(models, ServerConfig(token=token, reload_s=reload_s, refresh_s=refresh_s))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)


class BackgroundServer:
    """The same server in a thread of this process, on a free loopback port: the demo's tour and
    the tests run it; ``stop`` does what SIGTERM does (finish requests, drain the inference log)."""

    def __init__(self, models: ModelSet, config: ServerConfig, host: str = "127.0.0.1") -> None:
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        self.models = models
        self.token = config.token
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(models, config), host=host, port=self.port,
                                                    log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self.server.run, name="serving", daemon=True)

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise HealthMonitorError(f"the serving thread did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout_s)
