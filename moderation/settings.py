"""The one place the environment is read: where rules and models live, what a ``Checker`` loads, and
the server's check pool and budget, login throttling, cookies, docs. ``from_env`` reads the
``MODERATION_<FIELD>`` variables (a field's ``env`` metadata names another), so every uvicorn worker
process builds the same settings as ``serve``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

#: Types of the fields whose default is None (the others take their default's type).
_OPTIONAL: dict[str, type] = {"check_workers": int, "check_max_waiting": int, "heavy_timeout_s": float}


@dataclass
class Settings:
    # -- data and what a Checker loads (moderation/paths.py, moderation/checker.py) ------------------
    #: Rule packs, lexicons and policy.yaml (default: the repository's rules/).
    rules_dir: str | None = None
    #: The folder of shipped models (default: the repository's models/).
    models_dir: str | None = None
    #: The risk classifier checkpoint (default: ``<models_dir>/risk-classifier``); see ``paths.model_dir``.
    model_dir: str | None = None
    #: Image index a Checker matches listing images against (``moderation images index``).
    image_db: str | None = None
    #: Image paths and ``file://`` URLs in listings are read only under this folder
    #: (``moderation/images/sources.py``); without it, only ``data:`` URIs.
    image_root: str | None = None
    #: Also read the text in listing images and check it (moderation/ocr).
    ocr: bool = False
    #: Threads of the shared classifier scorer (``Checker.scorer``).
    scorer_threads: int = 1
    #: Ray cluster ``moderation audit --engine ray`` runs on (None: a local Ray).
    ray_address: str | None = field(default=None, metadata={"env": "RAY_ADDRESS"})

    #: OCR cache file shared by runs ("off" for none; default var/ocr-cache.sqlite).
    ocr_cache: str | None = None

    # -- the review queue's database (moderation/queue/db.py) ---------------------------------------
    #: The queue database when none is given (else a SQLite file under ./var).
    database_url: str | None = field(default=None, metadata={"env": "DATABASE_URL"})
    #: A pooled PostgreSQL connection idle this many seconds is pinged before use (0: always).
    db_ping_after_idle_s: float = field(default=5.0, metadata={"env": "MODERATION_DB_PING_AFTER_IDLE"})

    # -- the server ---------------------------------------------------------------------------------
    #: What ``serve`` hands each uvicorn worker process (``app_from_env``): the database and whether to
    #: load the classifier.
    serve_db: str | None = None
    serve_classifier: bool = True
    #: Threads that run checks (None: one per core) and how many requests may wait for one.
    check_workers: int | None = None
    check_max_waiting: int | None = None
    #: Listings with more text than this are "heavy": they may use all but one check thread.
    heavy_chars: int = 4000
    #: CPU seconds the rules engine may spend on one listing (``too_costly`` beyond; needs an engine
    #: whose ``find`` takes ``budget_s``).
    check_budget_s: float = 2.0
    #: Check heavy listings in a separate process (``isolation.py``): the loop never waits for their
    #: GIL, and one that runs past ``heavy_timeout_s`` (default: twice the budget plus 2 s) is killed.
    #: ``serve`` turns it on; tests and embedded apps check in threads.
    isolate_heavy: bool = False
    heavy_timeout_s: float | None = None
    #: Seconds in ``Retry-After`` when the check pool or the password checks are saturated.
    retry_after_s: int = 1
    #: Always mark cookies ``Secure`` (behind a TLS-terminating proxy the app sees plain http).
    secure_cookies: bool = False
    #: Serve the API reference page at /docs (to signed-in users; /openapi.json always needs a credential).
    docs: bool = True
    #: Password hashing: "strong" (argon2id, RFC 9106's 64 MiB profile) or "cheap" (tests only).
    password_hashing: str = "strong"
    #: Password checks running at once per process; more wait up to ``login_wait_s``, and beyond
    #: ``login_max_waiting`` waiting ones a login is refused at once (503).
    login_concurrency: int = 1
    login_max_waiting: int = 8
    login_wait_s: float = 3.0
    #: Failed logins per account (and per address) in ``login_window_s`` before backoff starts; each
    #: further failure doubles the lock, from ``login_lock_s`` up to ``login_max_lock_s``.
    login_account_failures: int = 5
    login_address_failures: int = 20
    login_window_s: float = 900.0
    login_lock_s: float = 30.0
    login_max_lock_s: float = 900.0
    #: How often each process checks the credential epoch (revocations elsewhere show within this).
    credential_poll_s: float = 1.0
    #: ``sys.setswitchinterval`` for ``serve``: how long a thread holding the GIL (a check) may make the
    #: event loop wait for it. Python's 5 ms default let worst-case checks push /health past 100 ms.
    switch_interval_s: float = 0.001

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then ``MODERATION_<FIELD>`` environment variables, then ``overrides``."""
        values: dict[str, object] = {}
        defaults = cls()
        for f in fields(cls):
            raw = os.environ.get(_env_name(f.name, f.metadata))
            if raw is None or raw == "":
                continue
            default = getattr(defaults, f.name)
            kind = _OPTIONAL.get(f.name) or (str if default is None else type(default))
            if kind is bool:
                values[f.name] = raw.lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = kind(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` in a worker process give these settings."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[_env_name(f.name, f.metadata)] = (
                ("1" if value else "0") if isinstance(value, bool) else str(value)
            )
        return out


def _env_name(name: str, metadata: Any) -> str:
    return str(metadata.get("env") or "MODERATION_" + name.upper())


def settings() -> Settings:
    """The settings of this process's environment as it is now (tests change it with monkeypatch)."""
    return Settings.from_env()
