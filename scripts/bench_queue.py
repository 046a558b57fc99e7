"""Benchmark the review queue and /v1/check over real HTTP on loopback.

1. Drain: N concurrent reviewers (threads, one HTTP client each, bounded loops) claim-next and decide
   until the queue is empty, against a uvicorn server in its own process, on PostgreSQL and SQLite.
   Checks afterwards: no item claimed twice, every item decided exactly once (one live decision),
   event replay equals state. Prints decisions/s and claim latency p50/p95.
2. Load: an open-loop generator sends ``POST /v1/check`` at a fixed rate (default 200/s for 60 s) and
   prints p50/p99 latency and the error count. ``--check-seconds`` shortens it.

    .venv/bin/python scripts/bench_queue.py                      # both backends, 2000 items, 60 s load
    .venv/bin/python scripts/bench_queue.py --backend sqlite --check-seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.api.accounts import Accounts  # noqa: E402
from moderation.queue import ReviewQueue  # noqa: E402
from moderation.queue.core import DECISIONS, EVENTS  # noqa: E402
from moderation.queue.db import temporary_schema  # noqa: E402
from moderation.queue.roles import Actor  # noqa: E402
from moderation.schema import CheckResult, Finding, Listing  # noqa: E402

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- server process ----------------------------------------------------------------------------------


def serve(database_url: str, port: int, classifier: bool) -> None:
    """Runs in the child process: the real app, one uvicorn worker (``BENCH_WORKERS=N``: N)."""
    import uvicorn

    from moderation.api import create_app
    from moderation.checker import Checker

    # The same default as ``moderation serve``: one worker on either backend.
    workers = int(os.environ.get("BENCH_WORKERS") or 1)
    if workers > 1:
        from moderation.api.app import ENV_CLASSIFIER, ENV_DATABASE_URL

        os.environ[ENV_DATABASE_URL] = database_url
        os.environ[ENV_CLASSIFIER] = "1" if classifier else "0"
        uvicorn.run(
            "moderation.api.app:app_from_env",
            factory=True,
            workers=workers,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    app = create_app(database_url, Checker(classifier=classifier))
    # Load rules and jieba, and check each load listing once, before anything is timed.
    app.state.get_checker().check_many(load_listings())
    import gc

    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Server:
    def __init__(self, database_url: str, classifier: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, __file__, "--serve", database_url, "--port", str(self.port)]
        if classifier:
            cmd.append("--classifier")
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its children (uvicorn workers) so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            pids += [
                int(p)
                for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            ]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- databases ----------------------------------------------------------------------------------------


def fresh_database(backend: str, workdir: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", lambda: None
    return temporary_schema(PG_URL, "bench_")


def seeding_url(url: str) -> str:
    """The URL to seed with: on PostgreSQL without waiting for each commit's WAL flush (seeding took
    longer than the drain). The server under test keeps the default, synchronous commits."""
    return url if url.startswith("sqlite") else url + "%20-csynchronous_commit%3Doff"


def postgres_cpu_seconds(application_name: str | None = None) -> dict[int, float]:
    """User + system CPU of the local ``postgres`` processes by pid: all of them (the server and every
    backend), or only the backends of connections named ``application_name``. The database shares
    the cores with the service and the client, so its cost per decision matters as much; the named
    backends are this benchmark's own, which other work on the same server does not move. Empty for
    a remote database."""
    pids: set[int] | None = None
    if application_name is not None:
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_URL)
        with admin.connect() as conn:
            pids = set(
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": application_name},
                ).scalars()
            )
        admin.dispose()
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (pids is not None and int(entry.name) not in pids):
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
            fields = stat.rsplit(")", 1)[1].split()
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU spent between two ``postgres_cpu_seconds`` readings (a process new since ``before`` counts
    whole); ``None`` when there is nothing to see."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items()) if after else None


def seed(queue: ReviewQueue, items: int) -> None:
    service = Actor(id=0, username="bench", role="service")
    for i in range(items):
        listing = Listing(id=f"bench-{i}", title=f"全网最低价 保温杯 {i}", seller_id=f"s-{i % 50}")
        result = CheckResult(
            id=listing.id,
            verdict="block",
            risk=0.9,
            findings=[
                Finding(
                    rule="absolute.scoped_superlative",
                    family="absolute_claims",
                    law="广告法第九条第三项",
                    severity="critical",
                    field="title",
                    start=0,
                    end=5,
                    text="全网最低价",
                    message="绝对化用语",
                )
            ],
        )
        queue.intake.enqueue(listing, result, service)


# -- drain --------------------------------------------------------------------------------------------


def drain(base: str, tokens: list[str], items: int) -> dict[str, Any]:
    """16 reviewer threads, each with one keep-alive ``http.client`` connection (httpx cost the client
    several times more CPU per request, and the client shares the 2 cores with the server)."""
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(base).hostname, urlsplit(base).port
    claimed: list[list[int]] = [[] for _ in tokens]
    latencies: list[list[float]] = [[] for _ in tokens]
    errors: list[str] = []
    gate = threading.Barrier(len(tokens))

    def reviewer(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)

        def post(path: str, body: dict[str, Any], **extra: str) -> tuple[int, Any]:
            conn.request(
                "POST",
                path,
                body=json.dumps(body),
                headers={"Authorization": f"Bearer {tokens[i]}", "Content-Type": "application/json", **extra},
            )
            response = conn.getresponse()
            return response.status, json.loads(response.read())

        gate.wait()
        try:
            for _ in range(items * 2):  # bounded
                t0 = time.perf_counter()
                status, claim = post("/v1/queue/claim-next", {})
                latencies[i].append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"claim {status} {str(claim)[:100]}")
                    continue
                if claim["item"] is None:
                    return
                item_id = claim["item"]["id"]
                claimed[i].append(item_id)
                body = {
                    "outcome": "rejected",
                    "reason_codes": ["absolute_claim"],
                    "claim_token": claim["claim_token"],
                    "version": claim["version"],
                    "listing_revision": claim["item"]["listing_revision"],
                }
                status, answer = post(
                    f"/v1/queue/items/{item_id}/decision", body, **{"Idempotency-Key": uuid.uuid4().hex}
                )
                if status != 200:
                    errors.append(f"decide {status} {str(answer)[:100]}")
        finally:
            conn.close()

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(len(tokens))]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - c0
    flat = [i for c in claimed for i in c]
    lat = [x for ls in latencies for x in ls]
    return {
        "elapsed": elapsed,
        "client_cpu": client_cpu,
        "claimed": flat,
        "errors": errors,
        "claim_p50_ms": pct(lat, 0.5) * 1000,
        "claim_p95_ms": pct(lat, 0.95) * 1000,
    }


def run_drain(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    url, drop = fresh_database(backend, workdir)
    seeder = ReviewQueue(seeding_url(url))
    queue = ReviewQueue(url, upgrade=False)
    name = f"bench_{uuid.uuid4().hex[:8]}"  # the server's connections: their backends' CPU is measured
    server_url = url if backend == "sqlite" else f"{url}&application_name={name}"
    try:
        t0 = time.perf_counter()
        seed(seeder, args.items)
        seeded = time.perf_counter() - t0
        if backend == "postgresql" and not args.no_analyze:
            # What autovacuum does within a minute of a bulk load; the drain is over sooner. Without
            # statistics PostgreSQL plans the claim as a sort of every claimable item.
            with seeder.db.engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
        accounts = Accounts(seeder.db)
        tokens = [
            accounts.create_token(accounts.create_user(f"r{i}", "reviewer").id) for i in range(args.reviewers)
        ]
        seeder.close()
        server = Server(server_url, classifier=False)
        try:
            pg = backend == "postgresql"
            s0, all0 = server.cpu_seconds(), postgres_cpu_seconds() if pg else {}
            out = drain(server.url, tokens, args.items)
            out["server_cpu"] = server.cpu_seconds() - s0
            out["db_cpu"] = cpu_since({}, postgres_cpu_seconds(name)) if pg else None
            out["all_db_cpu"] = cpu_since(all0, postgres_cpu_seconds()) if pg else None
        finally:
            server.stop()
        with queue.db.read() as conn:
            decisions = conn.execute(select(func.count()).select_from(DECISIONS)).scalar_one()
            live_per_item = conn.execute(
                select(DECISIONS.c.item_id, func.count())
                .where(DECISIONS.c.undone_at.is_(None))
                .group_by(DECISIONS.c.item_id)
            ).all()
            claimed_events = conn.execute(
                select(func.count()).select_from(EVENTS).where(EVENTS.c.type == "claimed")
            ).scalar_one()
        problems = queue.verify()
        claimed = out["claimed"]
        report = {
            "backend": backend,
            "items": args.items,
            "reviewers": args.reviewers,
            "seed_s": round(seeded, 1),
            "elapsed_s": round(out["elapsed"], 2),
            "decisions_per_s": round(decisions / out["elapsed"], 1),
            "claim_p50_ms": round(out["claim_p50_ms"], 1),
            "claim_p95_ms": round(out["claim_p95_ms"], 1),
            "claimed": len(claimed),
            "claimed_twice": len(claimed) - len(set(claimed)),
            "decisions": decisions,
            "items_with_one_live_decision": sum(1 for _, n in live_per_item if n == 1),
            "server_cpu_s": round(out["server_cpu"], 1),
            "client_cpu_s": round(out["client_cpu"], 1),
            "server_cpu_ms_per_decision": round(out["server_cpu"] * 1000 / max(decisions, 1), 2),
            "db_cpu_ms_per_decision": per_decision(out["db_cpu"], decisions),
            "all_postgres_cpu_ms_per_decision": per_decision(out["all_db_cpu"], decisions),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "analyzed": backend == "postgresql" and not args.no_analyze,
            "claimed_events": claimed_events,
            "http_errors": len(out["errors"]),
            "replay_problems": len(problems),
        }
        report["ok"] = (
            report["claimed_twice"] == 0
            and report["claimed"] == args.items == decisions == report["items_with_one_live_decision"]
            and not problems
            and not out["errors"]
        )
        for e in out["errors"][:5]:
            print("  error:", e)
        return report
    finally:
        seeder.close()
        queue.close()
        drop()


def per_decision(seconds: float | None, decisions: int) -> float | None:
    return None if seconds is None else round(seconds * 1000 / max(decisions, 1), 2)


# -- /v1/check load -----------------------------------------------------------------------------------


def load_listings() -> list[dict[str, Any]]:
    from moderation.api.demo import load_listings as demo

    return demo(limit=100)


def _generator(args: tuple[str, int, str, float, float, int, int]) -> dict[str, Any]:
    """One load process: ``threads`` keep-alive connections sending on a fixed schedule.

    Latency is measured from each request's *scheduled* time, so a generator or server that falls
    behind shows up in the figures instead of silently lowering the rate (no coordinated omission).
    """
    import http.client

    host, port, token, rate, seconds, threads, offset = args
    listings = load_listings()
    start = time.perf_counter() + 0.5
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(k: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(host, port, timeout=30)
        for i in range(k, total, threads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({**listings[(offset + i) % len(listings)], "id": f"load-{offset}-{i}"})
            ok = False
            try:
                conn.request(
                    "POST",
                    "/v1/check",
                    body=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            with lock:
                latencies.append(time.perf_counter() - due)
                errors += not ok

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {
        "latencies": latencies,
        "errors": errors,
        "elapsed": time.perf_counter() - start,
        "cpu": time.process_time(),
    }


def open_loop(
    port: int, token: str, rps: int, seconds: float, processes: int = 4, threads: int = 8
) -> dict[str, Any]:
    from multiprocessing import Pool

    jobs = [
        ("127.0.0.1", port, token, rps / processes, seconds, threads, p * 100_000) for p in range(processes)
    ]
    with Pool(processes) as pool:
        parts = pool.map(_generator, jobs)
    latencies = [x for p in parts for x in p["latencies"]]
    elapsed = max(p["elapsed"] for p in parts)
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 1),
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
        "p99_ms": round(pct(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "errors": sum(p["errors"] for p in parts),
        "client_cpu_s": round(sum(p["cpu"] for p in parts), 1),
    }


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-check-"))
    url = f"sqlite:///{workdir / 'check.db'}"
    queue = ReviewQueue(url)
    accounts = Accounts(queue.db)
    token = accounts.create_token(accounts.create_user("load", "service").id)
    server = Server(url, classifier=args.classifier)
    try:
        s0 = server.cpu_seconds()
        report = open_loop(server.port, token, args.check_rps, args.check_seconds)
        report["server_cpu_s"] = round(server.cpu_seconds() - s0, 1)
    finally:
        server.stop()
        queue.close()
    report["classifier"] = args.classifier
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--reviewers", type=int, default=16)
    parser.add_argument("--check-rps", type=int, default=200)
    parser.add_argument(
        "--check-seconds", type=float, default=60.0, help="Length of the /v1/check load (0 skips it)."
    )
    parser.add_argument("--classifier", action="store_true", help="Load the risk classifier in the server.")
    parser.add_argument("--skip-drain", action="store_true")
    parser.add_argument(
        "--no-analyze", action="store_true", help="Drain PostgreSQL without table statistics (no ANALYZE)."
    )
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.classifier)
        return
    ok = True
    if not args.skip_drain:
        backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
        for backend in backends:
            report = run_drain(backend, args)
            ok &= report["ok"]
            print(json.dumps(report, ensure_ascii=False))
            db_cpu = report["db_cpu_ms_per_decision"]
            print(
                f"{backend}: {report['decisions_per_s']} decisions/s, claim p95 {report['claim_p95_ms']} ms, "
                f"server CPU {report['server_cpu_ms_per_decision']} ms/decision"
                f"{'' if db_cpu is None else f', its database backends {db_cpu} ms/decision'}; "
                f"CPU server {report['server_cpu_s']} s / client {report['client_cpu_s']} s "
                f"in {report['elapsed_s']} s wall, "
                f"claimed twice {report['claimed_twice']}, replay problems {report['replay_problems']}, "
                f"load average {report['load_average']}"
            )
    if args.check_seconds > 0:
        report = run_load(args)
        print(json.dumps(report, ensure_ascii=False))
        print(
            f"/v1/check at {args.check_rps}/s for {report['seconds']} s: p99 {report['p99_ms']} ms, "
            f"errors {report['errors']}, CPU server {report['server_cpu_s']} s / client {report['client_cpu_s']} s"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
