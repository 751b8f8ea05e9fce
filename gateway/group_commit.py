"""Group commit: one writer thread turns whatever intakes are waiting into one transaction.

With eight SMTP connections delivering at once, eight transactions in a row each pay for a
commit (an fsync with `synchronous=FULL`) and, on SQLite, queue on the single writer lock. The
writer instead takes everything queued while the previous batch committed and stores it with
`Pipeline.process_batch`: the more load, the larger the batches, the cheaper each message.
An idle gateway commits a lone message at once; under load (the previous batch had more than
one) the writer lingers up to a millisecond for company (measured with bench/bench_smtp.py:
without it batches averaged under three messages at 8 connections, with it about eight).

The writer also runs each item's `prepare` step (for mail: parsing). Under the GIL a pool of
parser threads buys no parallelism, only hand-offs between threads, and each hand-off costs
a wake-up of the event loop: one thread doing parse + store per batch was measured faster.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from gateway import metrics
from gateway.intake import Intake
from gateway.pipeline import Outcome, Pipeline, RawInput

log = logging.getLogger(__name__)

Prepared = tuple[Intake, RawInput | None]
_Item = tuple[Callable[[], Prepared], "Future[Outcome]"]
_STOP = None


class GroupCommitter:
    def __init__(self, pipeline: Pipeline, max_batch: int = 64, linger: float = 0.001) -> None:
        self.pipeline = pipeline
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(self, prepare: Callable[[], Prepared]) -> Future[Outcome]:
        """Queue one item; the writer calls `prepare()` for the intake, then commits it.

        The future resolves once the intake is committed, or raises what `prepare` or the
        store raised.
        """
        future: Future[Outcome] = Future()
        self._queue.put((prepare, future))
        return future

    def submit_intake(self, intake: Intake, raw: RawInput | None = None) -> Future[Outcome]:
        return self.submit(lambda: (intake, raw))

    def stop(self, timeout: float | None = None) -> None:
        """Finish everything queued before this call, then end the writer thread."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        loaded = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                # Under load (the last batch had company), wait a moment for more: the
                # connections that just got their answers are sending again.
                wait = deadline - time.monotonic() if loaded else 0
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            loaded = len(batch) > 1
            try:
                self._commit(batch)
            except Exception:  # the writer must outlive any bug: every later mail needs it
                log.exception("group commit writer: batch failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RuntimeError("group commit failed"))

    def _commit(self, batch: list[_Item]) -> None:
        ready: list[tuple[Prepared, Future[Outcome]]] = []
        for prepare, future in batch:
            # A waiter gone before its turn (the SMTP client hung up, so aiosmtpd cancelled
            # the DATA handler) is skipped: nobody was told 250, the sender will retry. Once
            # running, a future cannot be cancelled, so its result can always be set.
            if not future.set_running_or_notify_cancel():
                continue
            try:
                ready.append((prepare(), future))
            except Exception as exc:
                future.set_exception(exc)
        if not ready:
            return
        metrics.BATCH_SIZE.observe(len(ready))
        try:
            results = self.pipeline.process_batch([item for item, _ in ready])
        except Exception as exc:  # never let the writer die: every waiter gets an answer
            log.exception("group commit failed")
            results = [exc] * len(ready)
        for (_, future), result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
