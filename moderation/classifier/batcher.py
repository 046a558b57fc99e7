"""One scoring thread for a server: concurrent requests' listings share forward passes.

Why: the HTTP check is one listing per request. Scoring each request where it arrives either blocks
the event loop for the whole forward pass or, from a thread pool, runs several multi-threaded forward
passes at once on two cores, whose idle intra-op threads spin and starve the event loop (figures in
models/MODEL_CARD.md, "Speed"). Here a single daemon thread owns the model;
callers submit a listing and get a future (an event loop awaits it through asyncio.wrap_future); the thread takes everything waiting (up to ``max_batch``),
scores it in one padded batch with ``threads`` intra-op threads (1 by default: no spinning, and the
event loop keeps the other core for HTTP and the rules), and resolves the futures. Torch and ONNX
Runtime release the GIL during the forward pass, so the rules of the next requests run meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()


class BatchScorer:
    """Scores listings for many callers on one thread, batching whatever is waiting."""

    def __init__(self, model: Any, *, threads: int = 1, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.model = model
        self.threads = threads
        self.max_batch = max_batch
        self.batches = 0  #: forward passes so far (for tests and monitoring)
        self.scored = 0  #: listings scored so far
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, listing: Any) -> Future[float]:
        """Queue one listing (a Listing or its dict); the future resolves to its calibrated risk."""
        fut: Future[float] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("BatchScorer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="risk-scorer", daemon=True)
                self._thread.start()
            self._queue.put((listing, fut))
        return fut

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then stop the thread; later submits raise."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    def _take_batch(self) -> tuple[list[tuple[Any, Future[float]]], bool]:
        """Block for one item, then take whatever else is already waiting, up to max_batch."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        stop = False
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take_batch()
            live = [(listing, fut) for listing, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                scores = self.model.score_listings(
                    [listing for listing, _ in live], batch_size=len(live), threads=self.threads
                )
            except Exception as exc:  # a scoring failure fails these requests, never the thread
                log.exception("scoring a batch of %d listings failed", len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            self.batches += 1
            self.scored += len(live)
            for (_, fut), score in zip(live, scores, strict=True):
                fut.set_result(score)
