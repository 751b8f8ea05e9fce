"""`gateway run`: HTTP, SMTP and the scheduler in one asyncio process.

Shutdown order (STYLE.md habit 12): stop taking new work, finish what is in hand, then close
the store. SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the rules.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway import metrics
from gateway.api.app import create_app
from gateway.approvals.queue import calls_enabled
from gateway.clock import utc_now
from gateway.config import Settings
from gateway.enrich import EnrichmentJob, build_enricher
from gateway.group_commit import GroupCommitter
from gateway.ingest.imap import start_pollers
from gateway.ingest.inspections import InspectionJob, Inspector
from gateway.ingest.smtp import IntakeHandler, make_smtp_factory
from gateway.outbound.worker import OutboxWorker
from gateway.pipeline import Pipeline
from gateway.reports.metrics import ReportGauges
from gateway.rules.engine import classify_intake
from gateway.rules.holder import RulesHolder
from gateway.sla.scanner import SlaJob
from gateway.storage import migrate
from gateway.storage.db import Database

log = logging.getLogger("gateway.daemon")


@dataclass
class Daemon:
    settings: Settings
    db: Database = field(init=False)
    rules: RulesHolder = field(init=False)
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database)
        self.rules = RulesHolder(self.settings.rules_path)
        self.enricher = build_enricher(self.settings)
        self.pipeline = Pipeline(
            self.db,
            self.settings,
            self.rules.classify,
            utc_now,
            groups=lambda name: self.rules.ruleset.group(name),
            enricher=self.enricher,
        )
        self.executor = ThreadPoolExecutor(
            max_workers=self.settings.daemon.intake_workers, thread_name_prefix="intake"
        )
        self.committer = GroupCommitter(self.pipeline)
        self.handler = IntakeHandler(self.pipeline, self.settings, self.executor, self.committer)
        self.stopping = asyncio.Event()
        self.outbox_stop = threading.Event()
        self.smtp_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None

    async def run(self) -> int:
        if self.settings.database.auto_migrate:
            await asyncio.to_thread(migrate.upgrade, self.db.engine)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_rules)

        scheduler = AsyncIOScheduler(timezone=self.settings.zone)
        cfg = self.settings
        if cfg.rules.watch_seconds > 0:
            _every(scheduler, "rules-watch", cfg.rules.watch_seconds, self.rules.reload_if_changed)
        if cfg.sla.enabled:
            # Compile [sla] now: a bad holiday file stops start-up instead of the first scan.
            cfg.sla_book()
            _every(scheduler, "sla-scan", cfg.sla.scan_seconds, SlaJob(self.db, cfg, utc_now).run)
        if self.enricher is not None:
            # Tickets whose CMDB lookup failed or did not fit intake's budget.
            retry = EnrichmentJob(
                self.db,
                self.enricher,
                utc_now,
                # Not RulesHolder.classify: re-runs must not count as rule matches.
                classify=lambda intake: classify_intake(self.rules.ruleset, intake),
            )
            _every(scheduler, "cmdb-enrich-retry", cfg.enrichment.retry_seconds, retry.run)
        if cfg.daemon.inspection_poll_seconds > 0:
            # Due fire times of [[inspections]] and API schedules; once each across daemons.
            inspections = InspectionJob(Inspector(self.pipeline))
            _every(scheduler, "inspections", cfg.daemon.inspection_poll_seconds, inspections.run)
        if cfg.reports.metrics_refresh_seconds > 0:
            gauges = ReportGauges(self.db, cfg, utc_now)
            # First run at once: the figures are there from the first scrape on.
            _every(
                scheduler,
                "report-gauges",
                cfg.reports.metrics_refresh_seconds,
                gauges.run,
                next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        self.committer.start()

        smtp_server = None
        if self.settings.smtp.enabled:
            smtp_server = await loop.create_server(
                make_smtp_factory(self.handler, self.settings),
                host=self.settings.smtp.host,
                port=self.settings.smtp.port,
                reuse_port=self.settings.smtp.reuse_port or None,
            )
            self.smtp_address = smtp_server.sockets[0].getsockname()[:2]
            log.info("smtp listening on %s:%d", *self.smtp_address)

        http_server, http_task = None, None
        if self.settings.http.enabled:
            app = create_app(self.settings, self.db, self.pipeline, accepting=self.accepting)
            config = uvicorn.Config(
                app,
                host=self.settings.http.host,
                port=self.settings.http.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
            http_server = uvicorn.Server(config)
            # The daemon owns the signals; uvicorn must not install its own.
            http_server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            http_task = asyncio.create_task(http_server.serve())
            while not http_server.started and not http_task.done():
                await asyncio.sleep(0.01)
            if http_task.done():
                http_task.result()
                raise RuntimeError("HTTP server did not start")
            sock = http_server.servers[0].sockets[0]
            self.http_address = sock.getsockname()[:2]
            log.info("http listening on %s:%d", *self.http_address)

        # One thread per [[imap]] mailbox: imapclient blocks, the event loop must not.
        pollers = start_pollers(self.pipeline, self.settings)
        outbox = self.start_outbox()

        log.info("gateway ready")
        lag_probe = asyncio.create_task(_watch_loop_lag(self.stopping))
        await self.stopping.wait()
        await lag_probe
        log.info("shutting down: draining in-flight work")

        self.handler.accepting = False
        if smtp_server is not None:
            smtp_server.close()
        # Pollers finish the message in hand and log out; their threads are joined off-loop.
        drain = self.settings.daemon.drain_seconds
        await asyncio.gather(*(asyncio.to_thread(p.stop, drain) for p in pollers))
        if outbox is not None:
            # The worker finishes the message in hand and releases the rest of its batch.
            self.outbox_stop.set()
            await asyncio.to_thread(outbox.join, drain)
        deadline = loop.time() + self.settings.daemon.drain_seconds
        while self.handler.inflight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if http_server is not None and http_task is not None:
            http_server.should_exit = True
            await http_task
        scheduler.shutdown(wait=False)
        self.executor.shutdown(wait=True)
        await asyncio.to_thread(self.committer.stop, drain)
        if self.enricher is not None:
            self.enricher.cmdb.close()
        self.db.dispose()
        log.info("stopped")
        return 0

    def start_outbox(self) -> threading.Thread | None:
        """The delivery worker, in a thread: smtplib and httpx calls block."""
        if not self.settings.outbound.enabled:
            log.info("outbound notifications disabled ([outbound] enabled = false)")
            if not calls_enabled(self.settings):
                return None
            # The worker still makes the connector calls (OA instances, status pushes).
        worker = OutboxWorker(self.db, self.settings)
        thread = threading.Thread(
            target=worker.run, args=(self.outbox_stop,), name="outbox", daemon=True
        )
        thread.start()
        return thread

    def accepting(self) -> bool:
        return not self.stopping.is_set()

    def reload_rules(self) -> None:
        log.info("SIGHUP: reloading rules")
        # Compiling a large rule set takes a noticeable fraction of a second: keep it off the
        # event loop that serves SMTP and HTTP.
        asyncio.get_running_loop().run_in_executor(self.executor, self.rules.reload)


def _every(
    scheduler: AsyncIOScheduler,
    job_id: str,
    seconds: float,
    func: Callable[[], object],
    **options: Any,
) -> None:
    """A periodic job that never overlaps itself and runs once for runs it missed."""
    scheduler.add_job(
        func,
        "interval",
        seconds=seconds,
        id=job_id,
        max_instances=1,
        coalesce=True,
        **options,
    )


async def _watch_loop_lag(stopping: asyncio.Event, interval: float = 0.1) -> None:
    """Measure how late timers fire: parsing or storage on the loop would show up here."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not stopping.is_set():
        expected = loop.time() + interval
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - expected)
        metrics.LOOP_LAG.observe(lag)
        if lag > worst:
            worst = lag
            metrics.LOOP_LAG_MAX.set(worst)


def run(settings: Settings) -> int:
    return asyncio.run(Daemon(settings).run())
