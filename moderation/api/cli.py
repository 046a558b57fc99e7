"""``moderation serve``, ``moderation users …``, ``moderation db …`` and ``moderation outbox …``
(registered lazily in moderation/cli.py so ``moderation check`` never imports FastAPI or SQLAlchemy)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from moderation.api.accounts import Accounts

DB_OPTION = click.option(
    "--db",
    "database_url",
    envvar="DATABASE_URL",
    help="Database URL (default: DATABASE_URL, else sqlite ./var/moderation.db).",
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@DB_OPTION
@click.option("--demo", is_flag=True, help="Seed demo users (passwords printed) and checked demo listings.")
@click.option("--no-classifier", is_flag=True, help="Check with rules only (do not load the risk model).")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes (default 1: checks already use every core through the check pool and the "
    "rules process; each further worker loads its own classifier, rules engine and rules process, "
    "see docs/queue.md).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (costs CPU per request; off by default).",
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    default=None,
    help="Mark every cookie Secure (use behind a TLS-terminating proxy; env MODERATION_SECURE_COOKIES=1).",
)
@click.option(
    "--check-workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads per process that run /v1/check (default: one per core).",
)
@click.option(
    "--check-budget",
    "check_budget_s",
    type=click.FloatRange(0.01, 600),
    default=None,
    help="CPU seconds the rules may spend on one listing before it is answered too_costly (default 2).",
)
@click.option(
    "--graceful-timeout",
    default=5,
    show_default=True,
    type=click.IntRange(0, 600),
    help="Seconds in-flight requests get to finish after SIGTERM before they are cut off.",
)
def serve(
    host: str,
    port: int,
    database_url: str | None,
    demo: bool,
    no_classifier: bool,
    workers: int | None,
    access_log: bool,
    secure_cookies: bool | None,
    check_workers: int | None,
    check_budget_s: float | None,
    graceful_timeout: int,
) -> None:
    """Run the HTTP API and the reviewer console (http://HOST:PORT/review)."""
    import gc
    import os

    import uvicorn

    from moderation.api.settings import Settings

    workers = workers or 1
    overrides: dict[str, Any] = {
        "secure_cookies": True if secure_cookies else None,
        "check_workers": check_workers,
        "check_budget_s": check_budget_s,
        "isolate_heavy": None if os.environ.get("MODERATION_ISOLATE_HEAVY") else True,
        "serve_classifier": not no_classifier,
    }
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        "timeout_graceful_shutdown": graceful_timeout,
    }
    banner = (
        f"console: http://{host}:{port}/review   API reference: http://{host}:{port}/docs (signed in)"
        f"   workers: {workers}"
    )
    if workers > 1:
        # Each worker builds its own app (ReviewQueue, pool, credential cache, checker, rules process)
        # from the environment; the database is the only shared state, as with several hosts. This
        # process only supervises them, so it stays small: the migration (once, before any worker: two
        # workers migrating a fresh database collide) and the demo seed run in a short-lived child
        # and leave neither the database layer nor a checker behind here.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as prepare:
            url = prepare.submit(_prepare, database_url, demo, not no_classifier).result()
        settings = Settings.from_env(serve_db=url, **overrides)
        click.echo(banner)
        os.environ.update(settings.to_env())
        uvicorn.run("moderation.api.app:app_from_env", factory=True, workers=workers, **options)
        return
    from moderation.api.app import create_app
    from moderation.checker import Checker
    from moderation.queue.db import resolve_url

    url = resolve_url(database_url)
    settings = Settings.from_env(serve_db=url, **overrides)
    click.echo(banner)
    checker = Checker(classifier=not no_classifier)
    checker.warm_up()  # the first request must not load the model on the event loop
    sys.setswitchinterval(settings.switch_interval_s)
    app = create_app(url, checker, settings=settings)
    if demo:
        from moderation.api.demo import seed

        seed(app.state.queue, checker, echo=click.echo)
    gc.collect()
    gc.freeze()  # start-up objects stay out of the collector's way (shorter pauses, better p99)
    uvicorn.run(app, **options)


def _prepare(database_url: str | None, demo: bool, classifier: bool) -> str:
    """``serve --workers N``'s start-up in a child process: the resolved database URL, migrated, and
    seeded with the demo data when asked."""
    from moderation.queue.db import Database, resolve_url

    url = resolve_url(database_url)
    database = Database(url)
    database.upgrade()
    database.dispose()
    if demo:
        from moderation.api.app import create_app
        from moderation.api.demo import seed
        from moderation.checker import Checker

        checker = Checker(classifier=classifier)
        seed_app = create_app(url, checker)
        seed(seed_app.state.queue, checker, echo=click.echo)
        seed_app.state.queue.close()
    return url


@click.group()
def users() -> None:
    """Manage reviewer accounts and API tokens."""


def _accounts(database_url: str | None) -> Accounts:
    from moderation.api.accounts import Accounts
    from moderation.queue import ReviewQueue

    return Accounts(ReviewQueue(database_url).db)


@users.command("create")
@click.argument("username")
@click.option(
    "--role", required=True, type=click.Choice(["triage", "reviewer", "lead", "admin", "auditor", "service"])
)
@click.option("--password", help="Login password for the console (prompted if --prompt).")
@click.option("--prompt", "ask", is_flag=True, help="Prompt for the password.")
@click.option("--token", "with_token", is_flag=True, help="Also create an API token and print it.")
@DB_OPTION
def users_create(
    username: str, role: str, password: str | None, ask: bool, with_token: bool, database_url: str | None
) -> None:
    """Create USERNAME with ROLE (and a password for console login)."""
    from moderation.queue import QueueError

    if ask:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    accounts = _accounts(database_url)
    try:
        user = accounts.create_user(username, role, password)
    except QueueError as exc:
        _fail(exc)
    click.echo(f"created user {user.username} (id {user.id}, role {user.role})")
    if with_token:
        click.echo(f"token: {accounts.create_token(user.id, 'cli')}")


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", help="A label for the token.")
@DB_OPTION
def users_token(username: str, name: str, database_url: str | None) -> None:
    """Create an API token for USERNAME (printed once; only its hash is stored)."""
    from moderation.queue import QueueError

    accounts = _accounts(database_url)
    try:
        user = accounts.get_user(username)
    except QueueError as exc:
        _fail(exc)
    click.echo(accounts.create_token(user.id, name))


@users.command("list")
@DB_OPTION
def users_list(database_url: str | None) -> None:
    """List users and roles."""
    for user in _accounts(database_url).list_users():
        click.echo(
            f"{user['id']}\t{user['username']}\t{user['role']}\t{'active' if user['active'] else 'disabled'}"
        )


#: Said after revoking or disabling from the shell: running servers are other processes.
_CACHE_NOTE = "running servers stop accepting it within {seconds:g} s (they poll the credential epoch)"


def _fail(exc: Any) -> NoReturn:
    """A user error said the way every other command says one: one line, exit status 2."""
    click.echo(f"Error: {exc.message}", err=True)
    sys.exit(2)


@users.command("tokens")
@click.argument("username", required=False)
@click.option("--active", "active_only", is_flag=True, help="Leave out revoked tokens.")
@DB_OPTION
def users_tokens(username: str | None, active_only: bool, database_url: str | None) -> None:
    """List API tokens (of USERNAME, or all): id, user, name, prefix, created, last used, status.
    Secrets are never shown (only their hashes are stored)."""
    from moderation.queue import QueueError

    try:
        tokens = _accounts(database_url).list_tokens(username, include_revoked=not active_only)
    except QueueError as exc:
        _fail(exc)
    click.echo("id\tuser\tname\tprefix\tcreated\tlast_used\tstatus")
    for t in tokens:
        status = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
        click.echo(
            f"{t['id']}\t{t['username']}\t{t['name']}\t{t['prefix'] or '-'}\t{t['created_at']}\t"
            f"{t['last_used_at'] or '-'}\t{status}"
        )


@users.command("revoke")
@click.argument("token_ids", nargs=-1, type=int)
@click.option("--user", "username", help="Revoke every active token of this user.")
@DB_OPTION
def users_revoke(token_ids: tuple[int, ...], username: str | None, database_url: str | None) -> None:
    """Revoke API tokens by id (see ``moderation users tokens``), or all of --user. Idempotent."""
    from moderation.api.settings import Settings
    from moderation.queue import QueueError

    if not token_ids and not username:
        raise click.UsageError("give token ids or --user")
    accounts = _accounts(database_url)
    try:
        ids = list(token_ids) or [t["id"] for t in accounts.list_tokens(username, include_revoked=False)]
        for token_id in ids:
            t = accounts.revoke_token(token_id, username)
            click.echo(f"revoked token {t['id']} ({t['username']}, {t['name'] or '-'}, {t['prefix'] or '-'})")
    except QueueError as exc:
        _fail(exc)
    if ids:
        click.echo(_CACHE_NOTE.format(seconds=Settings.from_env().credential_poll_s))
    else:
        click.echo(f"{username} has no active tokens")


@users.command("disable")
@click.argument("username")
@DB_OPTION
def users_disable(username: str, database_url: str | None) -> None:
    """Disable USERNAME: their tokens and console sessions stop working (sessions are deleted)."""
    from moderation.api.settings import Settings
    from moderation.queue import QueueError

    try:
        _accounts(database_url).set_active(username, False)
    except QueueError as exc:
        _fail(exc)
    click.echo(f"disabled {username}; " + _CACHE_NOTE.format(seconds=Settings.from_env().credential_poll_s))


@users.command("enable")
@click.argument("username")
@DB_OPTION
def users_enable(username: str, database_url: str | None) -> None:
    """Enable a disabled USERNAME again (their unrevoked tokens work again; sessions are gone)."""
    from moderation.queue import QueueError

    try:
        _accounts(database_url).set_active(username, True)
    except QueueError as exc:
        _fail(exc)
    click.echo(f"enabled {username}")


@click.group()
def db() -> None:
    """Database schema: upgrade, and verify the event log against the queue state."""


@db.command("upgrade")
@DB_OPTION
def db_upgrade(database_url: str | None) -> None:
    """Apply the Alembic migrations up to the newest."""
    from moderation.queue.db import Database
    from moderation.queue.migrate import current

    database = Database(database_url)
    database.upgrade()
    click.echo(f"schema at revision {current(database.engine)} ({database.dialect})")


@db.command("verify")
@DB_OPTION
def db_verify(database_url: str | None) -> None:
    """Replay every item's events and compare with its state; exit 1 on any difference."""
    from moderation.queue import ReviewQueue

    problems = ReviewQueue(database_url).verify()
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


@click.group()
def outbox() -> None:
    """Deliver the outbox (seller notifications and withdrawals) from the shell."""


@outbox.command("drain")
@click.option(
    "--out",
    "out_path",
    default="-",
    show_default=True,
    help="JSON Lines file to append the records to ('-' = stdout).",
)
@click.option(
    "--batch", default=100, show_default=True, type=click.IntRange(1, 500), help="Records per lease."
)
@click.option(
    "--max", "max_records", type=click.IntRange(1), default=None, help="Stop after this many records."
)
@click.option("--lease-seconds", default=60, show_default=True, type=click.IntRange(1, 3600))
@DB_OPTION
def outbox_drain(
    out_path: str, batch: int, max_records: int | None, lease_seconds: int, database_url: str | None
) -> None:
    """Lease every deliverable record, write it as one JSON line, then acknowledge it.

    At least once: each batch is written and flushed (fsync'd for a file) before it is acknowledged,
    so a crash in between writes it again on the next run; deduplicate by ``id``. Records still in
    their undo window, or leased by another consumer, are left for later (counted on stderr)."""
    from moderation.queue import ReviewQueue

    queue = ReviewQueue(database_url)
    out = sys.stdout if out_path == "-" else open(out_path, "a", encoding="utf-8")  # noqa: SIM115
    drained = 0
    try:
        while max_records is None or drained < max_records:
            limit = batch if max_records is None else min(batch, max_records - drained)
            records = queue.outbox.lease(limit=limit, lease_seconds=lease_seconds)["records"]
            if not records:
                break
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            if out is not sys.stdout:
                os.fsync(out.fileno())
            queue.outbox.ack([r["id"] for r in records])
            drained += len(records)
    finally:
        if out is not sys.stdout:
            out.close()
    counts = queue.outbox.counts()
    queue.close()
    click.echo(
        f"drained {drained} records; {counts['waiting']} waiting (undo window), "
        f"{counts['leased']} leased by other consumers, {counts['ready']} ready",
        err=True,
    )


@outbox.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "delivered", "cancelled", "all"]),
    default="pending",
    show_default=True,
)
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1), help="At most this many records."
)
@DB_OPTION
def outbox_list(status: str, limit: int, database_url: str | None) -> None:
    """Print outbox records as JSON Lines in id order, without leasing or acknowledging them."""
    from moderation.queue import ReviewQueue

    queue = ReviewQueue(database_url)
    after, shown = 0, 0
    while shown < limit:
        page = queue.outbox.records(status=status, after=after, limit=min(1000, limit - shown))
        for record in page["records"]:
            click.echo(json.dumps(record, ensure_ascii=False))
        shown += len(page["records"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    queue.close()
