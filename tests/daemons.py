"""`gateway init` and `gateway run` as a user runs them, for tests: a fresh config folder, edits
to its text, environment overrides, a real process on loopback ports, readiness, a clean stop."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(port: int, subject: str, body: str, sender: str = "alice@example.com", **headers) -> tuple:
    msg = EmailMessage()
    msg["From"] = f"Alice <{sender}>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.send_message(msg), client.noop()


@dataclass
class Folder:
    """A config folder written by `gateway init`: its environment (no GATEWAY_* of ours) and
    the admin token init printed."""

    path: Path
    env: dict[str, str]
    token: str

    @property
    def config(self) -> Path:
        return self.path / "gateway.toml"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.path / 'gateway.db').as_posix()}"

    def edit(self, change: Callable[[str], str]) -> None:
        self.config.write_text(change(self.config.read_text(encoding="utf-8")), encoding="utf-8")


def init(path: Path) -> Folder:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    done = subprocess.run(
        [*GATEWAY, "init", "--dir", str(path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"admin API token: (\S+)\)", done.stdout)
    assert found, done.stdout
    return Folder(path, env, found.group(1))


@dataclass
class Running:
    proc: subprocess.Popen
    folder: Path
    env: dict[str, str]
    smtp_port: int
    http_port: int
    token: str
    log_path: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*GATEWAY, *args, "--config", str(self.folder / "gateway.toml")],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as systemd does; the exit status once the daemon has drained."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextmanager
def running(
    folder: Folder,
    overrides: Mapping[str, str] | None = None,
    *,
    smtp_port: int | None = None,
    http_port: int | None = None,
    log_name: str = "daemon.log",
) -> Iterator[Running]:
    """`gateway run` on `folder` with GATEWAY_* `overrides`, yielded once /readyz answers 200;
    killed afterwards if the test did not stop it."""
    smtp_port = free_port() if smtp_port is None else smtp_port
    http_port = free_port() if http_port is None else http_port
    env = folder.env | {
        "GATEWAY_SMTP__PORT": str(smtp_port),
        "GATEWAY_HTTP__PORT": str(http_port),
        **(overrides or {}),
    }
    log_path = folder.path / log_name
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*GATEWAY, "run", "--config", str(folder.config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        daemon = Running(proc, folder.path, env, smtp_port, http_port, folder.token, log_path)

        def ready() -> bool:
            assert proc.poll() is None, daemon.log()
            try:
                return httpx.get(daemon.url("/readyz"), timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(ready, what="daemon ready")
            yield daemon
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
