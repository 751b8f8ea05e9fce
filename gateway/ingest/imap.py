"""IMAP intake: one worker thread per configured mailbox, each feeding the pipeline.

Per message: FETCH BODY.PEEK[] (RFC 3501 §6.4.5: PEEK leaves \\Seen alone, so nothing is marked
before the commit) -> mail_to_intake -> Pipeline.process (committed) -> MOVE to the processed
folder (RFC 6851) or flag \\Seen. Dying between the commit and the move only means the message
is processed again next time, and the pipeline's dedup makes that a Duplicate that is then
moved: a message is never lost and never makes two tickets.

imapclient is blocking, so each mailbox gets a dedicated thread; the daemon's event loop only
calls `start()` and, via a worker thread, `stop()`.

Several daemons on one database: a mailbox is polled only by the process holding the lease
`imap:<name>` (gateway/leases.py). The poller thread renews it every third of
`[daemon] lease_seconds`, also while waiting in IDLE; without it, the poller does not even
connect and asks again every third of the lease time; having lost it, it fetches no further
message and logs out. A message in hand when the lease changes hands may be stored by both,
which the dedup ledger turns into one ticket and a Duplicate.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from typing import Any

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import LoginError
from prometheus_client import Counter, Gauge
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from gateway.config import ImapMailbox, Settings
from gateway.ingest.mail import MailIntake, mail_to_intake
from gateway.intake import Intake, Source
from gateway.leases import LeaseKeeper, default_holder
from gateway.pipeline import Outcome, Pipeline, Quarantined, RawInput, Refused
from gateway.storage.db import StoreUnavailable

log = logging.getLogger(__name__)

MESSAGES = Counter(
    "gateway_imap_messages_total",
    "IMAP messages handled, by mailbox and outcome (created, updated, duplicate, quarantined, "
    "refused, unavailable, error).",
    ["mailbox", "outcome"],
)
UP = Gauge("gateway_imap_up", "1 while the mailbox is connected and selected.", ["mailbox"])

# Lost connections, refused connections, timeouts and TLS failures are all OSError;
# imaplib's `abort` is a dropped or garbled session. Both are worth a quick reconnect.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, IMAPClient.AbortError)
TIMEOUT_SECONDS = 60.0
RECONNECT_MAX_SECONDS = 60.0
# A refused login or a NO to SELECT/CREATE is a configuration problem: retrying it every second
# would only fill the log (and may lock the account), so it waits this long.
MISCONFIGURED_RETRY_SECONDS = 300.0
# RFC 2177 §3: a server may log out a client idle for 30 minutes even while it is in IDLE, so
# IDLE is re-issued before that.
IDLE_RENEW_SECONDS = 29 * 60.0
# How long one message waits for the store before it is left for a later round. Kept under
# the 30-minute autologout timer of RFC 3501 §5.4, since the connection is quiet meanwhile.
STORE_PATIENCE_SECONDS = 600.0
# A session that fails before its first sweep is flapping (the server accepts the login, then
# fails): pause up to this long before the next one, instead of reconnecting in a tight loop.
FLAP_SECONDS = 10.0


class _Client(IMAPClient):
    """IMAPClient that can also read IDLE responses imaplib has already buffered."""

    _assume_readable = False

    def idle_check_buffered(self) -> list[tuple[Any, ...]]:
        """idle_check() without first waiting for the socket: returns what imaplib's buffered
        reader already holds (and whatever else can be read without blocking)."""
        self._assume_readable = True
        try:
            return list(self.idle_check(timeout=0))
        finally:
            self._assume_readable = False

    # idle_check() asks one of these whether the socket is readable before reading lines.
    def _poll_socket(self, sock: Any, timeout: float | None = None) -> Any:
        return True if self._assume_readable else super()._poll_socket(sock, timeout)

    def _select_poll_socket(self, sock: Any, timeout: float | None = None) -> Any:
        return True if self._assume_readable else super()._select_poll_socket(sock, timeout)


class _Stopped(Exception):
    """Raised inside a retried call when stop() was requested; never retried."""


class _LeaseLost(Exception):
    """Another process holds this mailbox's lease now: stop fetching and log out."""


class ImapPoller:
    """Watches one mailbox: IDLE where the server offers it, polling otherwise."""

    def __init__(
        self,
        mailbox: ImapMailbox,
        pipeline: Pipeline,
        settings: Settings,
        lease: LeaseKeeper | None = None,
    ) -> None:
        self.mailbox = mailbox
        # None: this poller is the only one (tests of the poller alone); the daemon gives one.
        self.lease = lease
        self.pipeline = pipeline
        self.settings = settings
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # stop() writes a byte here to break a select() on the IMAP socket during IDLE: a
        # second thread must not write DONE on a connection the worker is reading.
        self._wake_r, self._wake_w = socket.socketpair()
        self._uidvalidity: int | None = None
        # UIDs deliberately left in the folder (could not be moved, or only flagged while the
        # search is for every message). UIDs mean something only within one UIDVALIDITY
        # (RFC 3501 §2.3.1.1), so the set is cleared when it changes.
        self._skip: set[int] = set()
        self._can_move = False
        self._can_uid_expunge = False
        self._swept = False  # the current session completed a sweep
        self.connected = threading.Event()  # set while a session is up (for health checks)
        UP.labels(mailbox.name).set(0)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError(f"imap {self.mailbox.name}: already started")
        self._thread = threading.Thread(
            target=self._run, name=f"imap-{self.mailbox.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking messages, finish the one in hand, log out; True if the thread ended.

        Blocks up to `timeout`: call it off the event loop (asyncio.to_thread).
        """
        self._stopping.set()
        with contextlib.suppress(OSError):  # already closed by an earlier stop()
            self._wake_w.send(b"\0")
        if self._thread is not None:
            self._thread.join(timeout)
            done = not self._thread.is_alive()
        else:
            done = True
        if done:
            self._wake_r.close()
            self._wake_w.close()
        return done

    # --- the worker loop -------------------------------------------------------------------

    def _run(self) -> None:
        name = self.mailbox.name
        while not self._stopping.is_set():
            if not self._wait_for_lease():
                break
            client = self._connect_with_retry()
            if client is None:
                break
            self._swept = False
            try:
                self._serve(client)
            except _LeaseLost:
                log.warning("imap %s: lease lost to another process; logging out", name)
                self._swept = True  # not a flapping server: wait for the lease, not a pause
            except CONNECTION_ERRORS as exc:
                log.warning("imap %s: connection lost (%s); reconnecting", name, _describe(exc))
            except IMAPClient.Error as exc:
                log.error("imap %s: server refused a command (%s); reconnecting", name, exc)
            except Exception:
                # A bug must not silently end intake from this mailbox.
                log.exception("imap %s: unexpected error; reconnecting", name)
            finally:
                self.connected.clear()
                UP.labels(name).set(0)
                _logout(client)
            if not self._swept:
                self._sleep(random.uniform(1.0, FLAP_SECONDS))
        if self.lease is not None:
            self.lease.release()  # a clean stop hands the mailbox over at once
        log.info("imap %s: stopped", name)

    def _wait_for_lease(self) -> bool:
        """Block until this process holds the mailbox's lease; False once stop() is called."""
        if self.lease is None:
            return not self._stopping.is_set()
        waiting = False
        while not self._stopping.is_set():
            if self.lease.keep():
                return True
            if not waiting:
                log.info(
                    "imap %s: another process polls this mailbox; taking over if it stops "
                    "renewing its lease (asking every %.0fs)",
                    self.mailbox.name, self.lease.retry_seconds,
                )  # fmt: skip
                waiting = True
            self._sleep(self.lease.retry_seconds)
        return False

    def _check_lease(self) -> None:
        """Renew the lease when due; raise _LeaseLost once another process has it."""
        if self.lease is not None and not self.lease.keep():
            raise _LeaseLost

    def _connect_with_retry(self) -> _Client | None:
        """Connect, log in and select, retrying with backoff; None once stop() is called."""
        retrying = Retrying(
            retry=retry_if_exception_type((*CONNECTION_ERRORS, IMAPClient.Error)),
            wait=self._reconnect_wait,
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._sleep,
            before_sleep=self._log_connect_failure,
        )
        try:
            return retrying(self._connect)
        except (_Stopped, RetryError):
            return None

    _backoff = wait_exponential_jitter(initial=1.0, max=RECONNECT_MAX_SECONDS, jitter=1.0)

    def _reconnect_wait(self, state: RetryCallState) -> float:
        if _misconfigured(state.outcome.exception() if state.outcome else None):
            return MISCONFIGURED_RETRY_SECONDS
        return self._backoff(state)

    def _log_connect_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        box = self.mailbox
        delay = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, LoginError):
            log.error(
                "imap %s: %s:%d refused the login of %r (%s); check username and password; "
                "next try in %.0fs",
                box.name, box.host, box.port, box.username, exc, delay,
            )  # fmt: skip
        elif _misconfigured(exc):
            log.error(
                "imap %s: %s:%d refused to open folder %r or create %r/%r (%s); "
                "next try in %.0fs",
                box.name, box.host, box.port, box.folder, box.processed_folder,
                box.quarantine_folder, exc, delay,
            )  # fmt: skip
        else:
            log.warning(
                "imap %s: cannot reach %s:%d (%s); next try in %.1fs",
                box.name, box.host, box.port, _describe(exc), delay,
            )  # fmt: skip

    def _connect(self) -> _Client:
        if self._stopping.is_set():
            raise _Stopped
        box = self.mailbox
        client = _Client(box.host, port=box.port, ssl=box.ssl, timeout=TIMEOUT_SECONDS)
        try:
            if box.starttls:
                client.starttls()
            client.login(box.username, box.password)
            for folder in (box.processed_folder, box.quarantine_folder):
                if folder:
                    _ensure_folder(client, folder)
            self._note_uidvalidity(client.select_folder(box.folder))
            self._can_move = client.has_capability("MOVE")
            self._can_uid_expunge = client.has_capability("UIDPLUS")
            idle = box.idle and client.has_capability("IDLE")
        except BaseException:
            _logout(client)
            raise
        self.connected.set()
        UP.labels(box.name).set(1)
        log.info(
            "imap %s: connected to %s:%d, folder %r; %s",
            box.name, box.host, box.port, box.folder,
            "waiting with IDLE" if idle else f"polling every {box.poll_seconds:g}s",
        )  # fmt: skip
        return client

    def _note_uidvalidity(self, selected: dict[bytes, Any]) -> None:
        value = selected.get(b"UIDVALIDITY")
        current = int(value) if value is not None else None
        if self._uidvalidity is not None and current != self._uidvalidity:
            log.warning(
                "imap %s: UIDVALIDITY of %r changed from %s to %s: the server renumbered the "
                "folder (RFC 3501 §2.3.1.1); everything in it is processed again and repeats "
                "become duplicates",
                self.mailbox.name, self.mailbox.folder, self._uidvalidity, current,
            )  # fmt: skip
            self._skip.clear()
        self._uidvalidity = current

    def _serve(self, client: _Client) -> None:
        """Sweep, wait for news, sweep again, until stop() is called; then log out."""
        idle = self.mailbox.idle and client.has_capability("IDLE")
        while not self._stopping.is_set():
            self._check_lease()
            busy = self._sweep(client)
            self._swept = True
            if busy:
                # Sweep until one finds nothing: mail that arrives during a batch is reported
                # in the responses to our FETCH/MOVE, which imapclient does not hand us, and
                # the server will not report it again in IDLE.
                continue
            if self._stopping.is_set():
                break
            if idle:
                self._idle(client)
            else:
                self._wait_polling(self.mailbox.poll_seconds)
                if not self._stopping.is_set():
                    # RFC 3501 §6.1.2: NOOP is the way to poll; it lets the server report
                    # new messages before the next SEARCH.
                    client.noop()

    def _wait_polling(self, seconds: float) -> None:
        """Wait out the poll interval, renewing the lease meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stopping.wait(min(remaining, self._renew_every()))
            self._check_lease()

    def _renew_every(self) -> float:
        # Twice per renewal period: a wake-up just short of "due" must not put the renewal off
        # by a whole period.
        return self.lease.retry_seconds / 2 if self.lease is not None else float("inf")

    def _idle(self, client: _Client) -> None:
        """Wait in IDLE (RFC 2177) for a change, the poll interval, or stop()."""
        # Ending IDLE every poll_seconds and sweeping is a safety net for servers that miss
        # a notification; it also keeps each IDLE well under the 29-minute renewal limit.
        deadline = time.monotonic() + min(self.mailbox.poll_seconds, IDLE_RENEW_SECONDS)
        client.idle()
        try:
            # Mail that arrived since the last SEARCH is reported right with the "+ idling"
            # continuation, which imaplib has already read from the socket into its buffer.
            if any(_is_news(r) for r in client.idle_check_buffered()):
                return
            while not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not self._wait_readable(client, min(remaining, self._renew_every())):
                    # stop(), the deadline or a lease renewal: the loop conditions decide.
                    self._check_lease()
                    continue
                responses = client.idle_check(timeout=0)
                # Readable but nothing parsed: the server closed the connection (idle_check
                # swallows the EOF). idle_done below then raises and we reconnect.
                if not responses or any(_is_news(r) for r in responses):
                    break
        finally:
            client.idle_done()

    def _wait_readable(self, client: IMAPClient, timeout: float) -> bool:
        """True when the server sent something; False on timeout or stop()."""
        with selectors.DefaultSelector() as selector:
            selector.register(client.socket(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            events = selector.select(timeout)
        return any(key.fileobj is not self._wake_r for key, _ in events)

    # --- one batch -------------------------------------------------------------------------

    def _sweep(self, client: IMAPClient) -> bool:
        """Handle up to `batch` waiting messages, oldest first; True if it handled any."""
        box = self.mailbox
        # With a processed folder, everything still here is work (even if a person read it);
        # without one, \Seen is our mark. \Deleted ones are on their way out (COPY fallback).
        criteria = ["NOT", "DELETED"] if box.processed_folder else ["UNSEEN", "NOT", "DELETED"]
        waiting = sorted(set(client.search(criteria)) - self._skip)
        for uid in waiting[: box.batch]:
            if self._stopping.is_set():
                return False
            self._check_lease()  # never fetch a message once another process has the mailbox
            if not self._handle(client, uid):
                return False  # the store is down: leave the rest for the next round
        return bool(waiting)

    def _handle(self, client: IMAPClient, uid: int) -> bool:
        """Process and file one message; False when the store is unavailable."""
        name = self.mailbox.name
        fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
        data = fetched.get(b"BODY[]")
        if data is None:
            return True  # expunged by someone else meanwhile
        try:
            outcome = self._store(data)
        except StoreUnavailable as exc:
            MESSAGES.labels(name, "unavailable").inc()
            log.warning("imap %s: store unavailable, uid %d left in place: %s", name, uid, exc)
            return False
        except Exception:
            # Not the message's fault as far as we know (a bug, an unexpected database
            # error): leave it where a person sees it rather than quarantine it, and do not
            # retry it in a loop. A restart tries it again.
            MESSAGES.labels(name, "error").inc()
            log.exception("imap %s: uid %d failed; left in %r", name, uid, self.mailbox.folder)
            self._skip.add(uid)
            return True
        label = type(outcome).__name__.lower()
        MESSAGES.labels(name, label).inc()
        parked = isinstance(outcome, Quarantined | Refused)
        target = self.mailbox.quarantine_folder if parked else self.mailbox.processed_folder
        self._file(client, uid, target)
        log.info(
            "imap %s: uid %d %s%s, %s",
            name, uid, label, _detail(outcome),
            f"moved to {target!r}" if target else "flagged \\Seen",
        )  # fmt: skip
        return True

    def _store(self, data: bytes) -> Outcome:
        """mail_to_intake + pipeline, retrying a store outage with backoff for a while."""
        try:
            mail = mail_to_intake(data, Source.IMAP, self.settings)
        except Exception as exc:
            # A parser bug must not turn this message into a poison pill: keep it, quarantined.
            log.exception("imap %s: parser failed", self.mailbox.name)
            mail = MailIntake(
                Intake(source=Source.IMAP, sender="", subject=""),
                RawInput(data, quarantine_reason=f"parser failed: {type(exc).__name__}: {exc}"),
            )
        retrying = Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential_jitter(initial=1.0, max=RECONNECT_MAX_SECONDS, jitter=1.0),
            stop=stop_after_delay(STORE_PATIENCE_SECONDS)
            | (lambda _state: self._stopping.is_set()),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: log.warning(
                "imap %s: store unavailable; retrying in %.1fs",
                self.mailbox.name,
                state.next_action.sleep if state.next_action else 0.0,
            ),
        )
        return retrying(self.pipeline.process, mail.intake, mail.raw)

    def _file(self, client: IMAPClient, uid: int, folder: str) -> None:
        """Move the committed message out of the way, or flag it \\Seen when `folder` is ""."""
        try:
            if not folder:
                client.add_flags([uid], [SEEN])
                if self.mailbox.processed_folder:
                    self._skip.add(uid)  # the search is not by \Seen: do not pick it up again
            elif self._can_move:
                client.move([uid], folder)  # RFC 6851: atomic, keeps flags
            else:
                # RFC 6851 §1 fallback. Without UIDPLUS (RFC 4315) the EXPUNGE also removes
                # other messages someone flagged \Deleted in this folder; that is what they
                # asked for, just sooner.
                client.copy([uid], folder)
                client.add_flags([uid], [DELETED])
                if self._can_uid_expunge:
                    client.uid_expunge([uid])
                else:
                    client.expunge()
        except CONNECTION_ERRORS:
            raise  # reconnect; the message is processed again and is then a Duplicate
        except IMAPClient.Error as exc:
            self._skip.add(uid)
            log.error(
                "imap %s: uid %d is committed but could not be filed to %r (%s); left in %r",
                self.mailbox.name, uid, folder or "\\Seen", exc, self.mailbox.folder,
            )  # fmt: skip

    def _sleep(self, seconds: float) -> None:
        # tenacity's sleep hook: an interruptible sleep, so stop() never waits out a backoff.
        self._stopping.wait(seconds)


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClient.Error:
        # Another poller (or a person) may have created it in between.
        if not client.folder_exists(folder):
            raise


def _is_news(response: tuple[Any, ...]) -> bool:
    # Untagged EXISTS/RECENT: new mail; FETCH: flags changed (e.g. \Seen removed by a person);
    # BYE: the server is going away. "OK Still here" keep-alives are not news.
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT", b"FETCH", b"BYE")


def _misconfigured(exc: BaseException | None) -> bool:
    # imaplib's `error` (NO/BAD, refused login) is a configuration problem; its subclass
    # `abort` is a broken connection.
    return isinstance(exc, IMAPClient.Error) and not isinstance(exc, IMAPClient.AbortError)


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"


def _detail(outcome: Outcome) -> str:
    key = getattr(outcome, "key", None)
    reason = getattr(outcome, "reason", None)
    return f" {key}" if key else f" ({reason})" if reason else ""


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except (*CONNECTION_ERRORS, IMAPClient.Error):
        with contextlib.suppress(OSError):
            client.shutdown()


def start_pollers(
    pipeline: Pipeline, settings: Settings, holder: str | None = None
) -> list[ImapPoller]:
    """One started poller per `[[imap]]` mailbox, each polling while it holds the mailbox's
    lease (`holder` names this process in the leases table)."""
    holder = holder or default_holder()
    ttl = settings.daemon.lease_seconds
    pollers = [
        ImapPoller(
            box, pipeline, settings, LeaseKeeper(pipeline.db, f"imap:{box.name}", holder, ttl)
        )
        for box in settings.imap
    ]
    for poller in pollers:
        poller.start()
    return pollers
