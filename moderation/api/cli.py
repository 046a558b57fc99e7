"""``moderation serve``, ``moderation users …`` and ``moderation db …`` (registered lazily in
moderation/cli.py so ``moderation check`` never imports FastAPI or SQLAlchemy)."""

from __future__ import annotations

import sys

import click

DB_OPTION = click.option("--db", "database_url", envvar="DATABASE_URL",
                         help="Database URL (default: DATABASE_URL, else sqlite ./var/moderation.db).")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@DB_OPTION
@click.option("--demo", is_flag=True, help="Seed demo users (passwords printed) and checked demo listings.")
@click.option("--no-classifier", is_flag=True, help="Check with rules only (do not load the risk model).")
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: 2 on PostgreSQL, 1 on SQLite, which has one writer anyway).")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request (costs CPU per request; off by default).")
def serve(host: str, port: int, database_url: str | None, demo: bool, no_classifier: bool,
          workers: int | None, access_log: bool) -> None:
    """Run the HTTP API and the reviewer console (http://HOST:PORT/review)."""
    import gc
    import os

    import uvicorn

    from moderation.api.app import ENV_CLASSIFIER, ENV_DATABASE_URL, create_app
    from moderation.checker import Checker
    from moderation.queue.db import resolve_url

    url = resolve_url(database_url)
    if workers is None:
        workers = 1 if url.startswith("sqlite") else 2
    options = {"host": host, "port": port, "log_level": "info", "access_log": access_log}
    click.echo(f"console: http://{host}:{port}/review   API docs: http://{host}:{port}/docs   workers: {workers}")
    if workers > 1:
        # Each worker builds its own app (ReviewQueue, pool, credential cache, checker) from the
        # environment; the database is the only shared state, as with several hosts. Migrate once
        # here first: two workers migrating a fresh database at the same time collide.
        from moderation.queue.db import Database

        database = Database(url)
        database.upgrade()
        database.dispose()
        if demo:
            from moderation.api.demo import seed

            checker = Checker(classifier=not no_classifier)
            seed_app = create_app(url, checker)
            seed(seed_app.state.queue, checker, echo=click.echo)
            seed_app.state.queue.close()
        os.environ[ENV_DATABASE_URL] = url
        os.environ[ENV_CLASSIFIER] = "0" if no_classifier else "1"
        uvicorn.run("moderation.api.app:app_from_env", factory=True, workers=workers, **options)
        return
    checker = Checker(classifier=not no_classifier)
    app = create_app(url, checker)
    if demo:
        from moderation.api.demo import seed

        seed(app.state.queue, checker, echo=click.echo)
    gc.collect()
    gc.freeze()  # start-up objects stay out of the collector's way (shorter pauses, better p99)
    uvicorn.run(app, **options)


@click.group()
def users() -> None:
    """Manage reviewer accounts and API tokens."""


def _accounts(database_url: str | None):
    from moderation.api.accounts import Accounts
    from moderation.queue import ReviewQueue

    return Accounts(ReviewQueue(database_url).db)


@users.command("create")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(["triage", "reviewer", "lead", "admin", "auditor", "service"]))
@click.option("--password", help="Login password for the console (prompted if --prompt).")
@click.option("--prompt", "ask", is_flag=True, help="Prompt for the password.")
@click.option("--token", "with_token", is_flag=True, help="Also create an API token and print it.")
@DB_OPTION
def users_create(username: str, role: str, password: str | None, ask: bool, with_token: bool,
                 database_url: str | None) -> None:
    """Create USERNAME with ROLE (and a password for console login)."""
    from moderation.queue import QueueError

    if ask:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    accounts = _accounts(database_url)
    try:
        user = accounts.create_user(username, role, password)
    except QueueError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
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
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(accounts.create_token(user.id, name))


@users.command("list")
@DB_OPTION
def users_list(database_url: str | None) -> None:
    """List users and roles."""
    for user in _accounts(database_url).list_users():
        click.echo(f"{user['id']}\t{user['username']}\t{user['role']}\t{'active' if user['active'] else 'disabled'}")


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
