"""A real Dovecot IMAP server for tests: a child process on a free loopback port.

Everything it needs (config, passwd file, maildirs, sockets, state, log) lives in one temporary
directory and it runs as the current user, so the tests need no system configuration and no
root (under root, as in CI, mail access and logins drop to an unprivileged account, which
Dovecot insists on). Debian package: `dovecot-imapd`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.conftest import IN_CI

USER = "support@example.com"
PASSWORD = "s3cret-imap"


def dovecot_binary() -> str | None:
    """The dovecot executable (it lives in /usr/sbin, often not on a normal user's PATH)."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def missing_reason() -> str:
    return "dovecot is not installed (apt-get install dovecot-imapd)"


def _unprivileged_user() -> str:
    for name in ("dovenull", "nobody"):  # dovenull: made by the Debian package
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("no unprivileged user (dovenull or nobody) for dovecot's imap-login")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """One Dovecot instance; `start()`/`stop()` may be called again to simulate a restart."""

    def __init__(self, *, capabilities: str = "", port: int | None = None) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise FileNotFoundError(missing_reason())
        self.binary = binary
        # A short private directory, not pytest's tmp_path: unix socket paths in base_dir are
        # limited to ~108 bytes, and under root the mail user must be able to traverse it.
        self.root = Path(tempfile.mkdtemp(prefix="gw-dovecot-"))
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = USER
        self.password = PASSWORD
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: BinaryIO | None = None
        self.config = self.root / "dovecot.conf"
        self._write_config(capabilities)

    def _write_config(self, capabilities: str) -> None:
        uid, gid = os.getuid(), os.getgid()
        me = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid).gr_name
        if uid == 0:
            # Dovecot refuses root twice over: its network-facing imap-login processes ("This
            # process must not be run as root") and mail access ("Mail access not allowed for
            # root"). Both get an unprivileged account; the master and auth stay root.
            login_user = _unprivileged_user()
            mail = pwd.getpwnam(login_user)
            mail_uid, mail_gid = mail.pw_uid, mail.pw_gid
            self.root.chmod(0o755)
        else:
            login_user, mail_uid, mail_gid = me, uid, gid
        for sub in ("mail", "home"):
            (self.root / sub).mkdir()
            os.chown(self.root / sub, mail_uid, mail_gid)
        passwd = self.root / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n", encoding="utf-8")
        # `imap_capability` replaces the post-login CAPABILITY list: tests use it to play a
        # server without IDLE (RFC 2177) and MOVE (RFC 6851).
        cap_line = f"imap_capability = {capabilities}" if capabilities else ""
        self.config.write_text(
            f"""
protocols = imap
listen = {self.host}
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.root / "dovecot.log"}
info_log_path = {self.root / "dovecot.log"}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {me}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = {min(mail_uid, 500)}
first_valid_gid = {min(mail_gid, 500)}
mail_uid = {mail_uid}
mail_gid = {mail_gid}
mail_location = maildir:{self.root / "mail"}/%n
# IDLE notices new mail through inotify; where that is unavailable (some containers) this is
# the fallback check (default 30 s), short so IDLE tests do not depend on inotify.
mailbox_idle_check_interval = 1 secs
{cap_line}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = home={self.root / "home"}/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""",
            encoding="utf-8",
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it accepts connections."""
        self._stderr = (self.root / "stderr.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # its own process group: stop() ends all of it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                self._close_stderr()
                raise RuntimeError(f"dovecot exited with {code}{self.log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as conn:
                    if conn.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not listen on {self.port} within {timeout}s{self.log}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; established sessions are cut, as in a real restart."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        # An imap process in IDLE outlives its master by ~10 s before it notices; the client
        # would see a server that is down but a session that is up. Its process group (our
        # own child's, see start()) takes it down with the master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._close_stderr()

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def set_uidvalidity(self, folder: str, value: int) -> None:
        """Give `folder` a new UIDVALIDITY, as a server does after rebuilding its index."""
        doveadm = shutil.which("doveadm", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin")
        if doveadm is None:
            raise FileNotFoundError("doveadm (part of dovecot-core) is missing")
        command = ["mailbox", "update", "-u", self.user, "--uid-validity", str(value), folder]
        subprocess.run(
            [doveadm, "-c", str(self.config), *command],
            check=True,
            capture_output=True,
            timeout=30,
        )

    @property
    def log(self) -> str:
        """Dovecot's log and anything it printed before the log was open (for messages)."""
        parts = []
        for name in ("stderr.log", "dovecot.log"):
            path = self.root / name
            text = path.read_text(errors="replace") if path.exists() else ""
            if text:
                parts.append(f"\n--- {name} ---\n{text[-4000:]}")
        return "".join(parts)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def skip_or_fail_without_dovecot() -> None:
    """Under CI=true a missing Dovecot is a failure, elsewhere a skip (issue 3: Done means)."""
    if dovecot_binary() is None:
        if IN_CI:
            pytest.fail(f"CI=true but {missing_reason()}")
        pytest.skip(missing_reason())


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """A started Dovecot, removed afterwards (skips, or fails under CI=true, without one)."""
    skip_or_fail_without_dovecot()
    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
