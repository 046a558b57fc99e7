"""A listing's own pictures for the console, so a reviewer sees the boxes of text found in them (docs/ocr.md).

``GET /v1/items/{item_id}/images/{n}``: picture ``n`` of the listing snapshot the queue item holds, as a
JPEG preview. The reference comes from the stored listing, never from the request, and is opened under
the same rules as a check (``moderation/images/sources.py``: ``data:`` URIs, files under the configured
image root; never remote URLs). Needs the ``view`` permission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from moderation.api.auth import require
from moderation.queue import QueueError
from moderation.queue.roles import Actor
from moderation.queue.safety import INT_MAX

router = APIRouter(tags=["images"])
_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}


@router.get("/v1/items/{item_id}/images/{n}")
async def item_image(
    item_id: Annotated[int, Path(ge=1, le=INT_MAX)],
    n: Annotated[int, Path(ge=0, le=999)],
    request: Request,
    actor: Annotated[Actor, Depends(require("view"))],
) -> Response:
    """Picture ``n`` of the item's listing (a JPEG preview; text boxes are drawn by the console)."""
    state = request.app.state

    def load() -> bytes:
        from moderation.images.hashing import ImageError
        from moderation.images.sources import ImageSources
        from moderation.ocr.stage import preview_jpeg

        try:
            item = state.queue.views.detail(item_id, actor)
        except QueueError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        refs = item["listing"].get("images") or []
        if n >= len(refs) or not isinstance(refs[n], str):
            raise HTTPException(404, "the listing has no such image")
        checker = state.checker if state.checker is not None else state.get_checker()
        stage = getattr(checker, "ocr_stage", None)
        sources = stage.sources if stage is not None else ImageSources.from_env()
        try:
            return preview_jpeg(sources, refs[n])
        except ImageError as exc:
            raise HTTPException(404, {"code": exc.code, "message": exc.message}) from None

    return Response(await run_in_threadpool(load), media_type="image/jpeg", headers=_HEADERS)
