"""``/openapi.json`` and ``/docs`` for signed-in callers, and the sign-in audit log.

The OpenAPI document stays at ``/openapi.json`` (the contract) but needs a credential: any role's
API token or a console session. ``/docs`` is a server-rendered reference built from the same
document (no Swagger UI, nothing from a CDN); off with ``Settings.docs = False``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from moderation.api.auth import current_actor, require
from moderation.queue.roles import Actor

router = APIRouter()
METHODS = ("get", "post", "put", "patch", "delete")


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Annotated[Actor, Depends(current_actor)]) -> JSONResponse:
    return JSONResponse(request.app.openapi())


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_text(s) for s in schema["anyOf"])
    text = str(schema.get("type", ""))
    if "enum" in schema:
        text += " (" + ", ".join(map(str, schema["enum"])) + ")"
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "maxLength") if k in schema]
    return text + (" [" + ", ".join(bounds) + "]" if bounds else "")


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
def docs(request: Request) -> Response:
    """The API reference for a signed-in console user (others are sent to the login page)."""
    from moderation.api.console import page_actor, render

    if not request.app.state.settings.docs:
        raise HTTPException(404, "Not Found")
    actor = page_actor(request)
    if actor is None:
        return RedirectResponse("/review/login", 303)
    spec = request.app.openapi()
    operations = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "tags": op.get("tags", []),
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        {**p, "schema_text": _schema_text(p.get("schema", {}))}
                        for p in op.get("parameters", [])
                    ],
                    "body": _schema_text(body) if body else "",
                    "responses": sorted(op.get("responses", {})),
                }
            )
    return render(request, "docs.html", actor, spec=json.loads(json.dumps(spec)), operations=operations)


@router.get("/v1/audit/logins", tags=["admin"])
def login_events(
    request: Request,
    _: Annotated[Actor, Depends(require("auth_audit"))],
    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """Sign-in audit events in id order: ``login_ok``, ``login_failed``, ``login_locked`` (a lock
    starts: account or address, until when), ``login_busy`` (refused: too many password checks at
    once). Page with ``after=<next_after>``."""
    return request.app.state.accounts.auth_events(after=after, limit=limit)  # type: ignore[no-any-return]
