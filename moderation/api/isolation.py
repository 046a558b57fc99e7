"""Heavy listings are checked in a separate process, so a worst-case listing never holds the server's
GIL (the event loop stays responsive) and a runaway check can be killed.

``RulesProcesses`` keeps one child per heavy check slot (``CheckPool.heavy_slots``). A child loads
the rules engine once (``Checker(classifier=False)``) and answers one listing at a time over a pipe:
the findings within the CPU budget (``Checker.find_within``: the engine's own budget, ``too_costly``
past it) and the engine's ``truncated`` flag. The parent's check thread waits on the pipe without the
GIL, then scores, decides and renders as for any listing. A child that does not answer within
``hard_timeout_s`` (an engine without a budget, or a bug) is killed and the listing answered
``too_costly``; the next heavy listing starts a fresh child. ``close`` kills every child at once, so
a server that is told to stop never waits for a heavy check.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from typing import Any

from moderation.rules.engine import Detection
from moderation.schema import Listing

log = logging.getLogger(__name__)


class TooCostly(Exception):
    """The child ran out of budget (or was killed for taking too long)."""

    too_costly = True  # ``Checker.check_scored`` answers ``too_costly``


class Stopped(Exception):
    """The server is shutting down (the children are gone)."""

    propagate = True  # ``Checker.check_scored`` lets it through (the API answers 503)


def _child(conn: Any) -> None:
    """The child's loop: load the engine once, then answer ``(listing, budget_s)`` messages."""
    from moderation.checker import Checker
    from moderation.rules.engine import CheckBudgetExceeded

    checker = Checker(classifier=False)
    checker.engine.find(Listing(id="warm-up", title="全网最低价 保温杯"))
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        data, budget_s = message
        try:
            detection = checker.find_within(Listing.model_validate(data), budget_s)
            conn.send(("ok", detection.to_payload()))
        except Exception as exc:
            if isinstance(exc, CheckBudgetExceeded):
                conn.send(("too_costly", str(exc)))
            else:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Child:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(child_conn,), name="rules-heavy", daemon=True)
        self.proc.start()
        child_conn.close()
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            self.kill()
            raise RuntimeError("the rules process did not start")
        kind, _ = self.conn.recv()
        if kind != "ready":
            raise RuntimeError("the rules process failed to start")
        self.ready = True

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class RulesProcesses:
    """Children that run the rules for heavy listings; ``find`` is called from check threads."""

    def __init__(self, slots: int, *, hard_timeout_s: float, start_timeout_s: float = 120.0) -> None:
        self.slots = slots
        self.hard_timeout_s = hard_timeout_s
        self.start_timeout_s = start_timeout_s
        self._idle: queue.Queue[_Child | None] = queue.Queue()
        self._all: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(slots):
            self._idle.put(None)  # a slot without a child yet: started on first use
        self.killed = 0  #: children killed for taking too long (for tests and the probe)

    def start(self) -> None:
        """Start every child now (``serve`` does, in the background, so the first heavy listing does
        not wait for the engine to load)."""
        taken = [self._idle.get() for _ in range(self.slots)]
        try:
            for i, child in enumerate(taken):
                if child is None:
                    taken[i] = child = self._spawn()
                child.wait_ready(self.start_timeout_s)
        finally:
            for child in taken:
                self._idle.put(child)

    def _spawn(self) -> _Child:
        with self._lock:
            if self._closed:
                raise Stopped("the server is shutting down")
            child = _Child()
            self._all.append(child)
            return child

    def find(self, listing: Listing, budget_s: float | None) -> Detection:
        """The rules' detection from a child; ``TooCostly`` past the budget or the hard timeout;
        ``Stopped`` when shutting down."""
        child = self._idle.get()
        try:
            if child is None or not child.proc.is_alive():
                child = self._spawn()
            child.wait_ready(self.start_timeout_s)
            try:
                child.conn.send((listing.model_dump(mode="json"), budget_s))
                started = time.monotonic()
                if not child.conn.poll(self.hard_timeout_s):
                    log.warning(
                        "listing %s took over %.1f s in the rules process; killed it",
                        listing.id,
                        time.monotonic() - started,
                    )
                    self.killed += 1
                    child.kill()
                    child = None
                    raise TooCostly(f"checking this listing took over {self.hard_timeout_s:g} s")
                kind, payload = child.conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                if child is not None:
                    child.kill()
                child = None
                if self._closed:
                    raise Stopped("the server is shutting down") from exc
                raise
        finally:
            self._idle.put(child)
        if kind == "ok":
            return Detection.from_payload(payload)
        if kind == "too_costly":
            raise TooCostly(payload)
        raise RuntimeError(payload)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children = list(self._all)
        for child in children:
            child.kill()
