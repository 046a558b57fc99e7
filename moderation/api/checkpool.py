"""The check pool: the CPU work of ``POST /v1/check`` runs here, never on the event loop.

A fixed number of daemon threads take jobs from a bounded wait list. When every thread is busy and
the wait list is full, ``submit`` refuses at once (``Saturated``: the API answers 503 with
``Retry-After``) instead of queuing without bound. Heavy jobs (long listings) may occupy at most
``workers - 1`` threads when there are two or more, so a stream of worst-case listings cannot hold
every thread while short listings wait; they also have a shorter wait list of their own.

Threads are daemons, so a process that is told to stop never waits for a check at exit; ``close``
fails everything still waiting (those requests get 503) and refuses new work. A job's cost is bounded
by the rules engine's CPU budget (``budget_s``), not by the pool: a Python thread cannot be stopped
from outside.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Saturated(Exception):
    """Every check thread is busy and the wait list is full (or the pool is shutting down)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Job:
    __slots__ = ("args", "fn", "future", "heavy", "queued_at")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], heavy: bool) -> None:
        self.fn, self.args, self.heavy = fn, args, heavy
        self.future: Future[Any] = Future()
        self.queued_at = time.monotonic()


class CheckPool:
    """``workers`` daemon threads; at most ``max_waiting`` jobs wait (``max_waiting_heavy`` heavy ones)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_waiting: int | None = None,
        max_waiting_heavy: int | None = None,
        nice: int = 0,
        name: str = "check",
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 2)
        self.nice, self.name = nice, name
        self.max_waiting = max_waiting if max_waiting is not None else 8 * self.workers
        self.max_waiting_heavy = max_waiting_heavy if max_waiting_heavy is not None else self.workers
        self.heavy_slots = max(1, self.workers - 1)
        self._cond = threading.Condition()
        self._light: deque[_Job] = deque()
        self._heavy: deque[_Job] = deque()
        self._busy = 0
        self._busy_heavy = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        #: Counters for tests and the probe: jobs run, refused (503), and the longest wait seen.
        self.stats = {"ran": 0, "refused": 0, "max_wait_s": 0.0}

    def _start(self) -> None:
        if self._threads:
            return
        for i in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, fn: Callable[..., T], *args: Any, heavy: bool = False) -> Future[T]:
        """Queue ``fn(*args)``; ``Saturated`` at once when the pool cannot take it."""
        with self._cond:
            if self._closed:
                raise Saturated("the server is shutting down")
            # Jobs in the pool (running or waiting) against what it holds: every thread busy plus the
            # wait list; heavy ones also against their own share.
            in_pool = self._busy + len(self._light) + len(self._heavy)
            full = in_pool >= self.workers + self.max_waiting
            if heavy:
                full = (
                    full or self._busy_heavy + len(self._heavy) >= self.heavy_slots + self.max_waiting_heavy
                )
            if full:
                self.stats["refused"] += 1
                raise Saturated("every check worker is busy; retry shortly")
            self._start()
            job = _Job(fn, args, heavy)
            (self._heavy if heavy else self._light).append(job)
            self._cond.notify()
            return job.future

    def _next(self) -> _Job | None:
        """The next job this thread may run (light first; heavy only while a heavy slot is free)."""
        while True:
            if self._light:
                return self._light.popleft()
            if self._heavy and self._busy_heavy < self.heavy_slots:
                return self._heavy.popleft()
            if self._closed:
                return None
            self._cond.wait()

    def _run(self) -> None:
        if self.nice:
            _lower_priority(self.nice)
        while True:
            with self._cond:
                job = self._next()
                if job is None:
                    return
                if not job.future.set_running_or_notify_cancel():
                    continue  # the request went away while its job waited
                self._busy += 1
                self._busy_heavy += job.heavy
                waited = time.monotonic() - job.queued_at
                self.stats["max_wait_s"] = max(self.stats["max_wait_s"], waited)
            try:
                job.future.set_result(job.fn(*job.args))
            except BaseException as exc:  # handed to the awaiting request
                job.future.set_exception(exc)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._busy_heavy -= job.heavy
                    self.stats["ran"] += 1
                    self._cond.notify_all()

    def close(self) -> None:
        """Refuse new work and fail every waiting job (running ones finish on their own)."""
        with self._cond:
            self._closed = True
            waiting = [*self._light, *self._heavy]
            self._light.clear()
            self._heavy.clear()
            self._cond.notify_all()
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(Saturated("the server is shutting down"))

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {
                "workers": self.workers,
                "busy": self._busy,
                "busy_heavy": self._busy_heavy,
                "waiting": len(self._light) + len(self._heavy),
                **self.stats,
            }


def _lower_priority(nice: int) -> None:
    """Make the calling thread (and threads it starts, e.g. argon2's lanes) yield the CPU to the
    rest of the server: Linux keeps a nice value per thread. Elsewhere, or without permission, a no-op."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
