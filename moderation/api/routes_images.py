"""Image thumbnails for the console, served by id from the image index store (never by path).

``moderation images index`` keeps a small JPEG of every indexed image in the index store, and a check
that finds a copy keeps one of the checked image (by a digest of its pixels, ``thumb`` in the image
result). The console shows the two side by side with these URLs; both need a signed-in user (an API
token or a console session) with the ``view`` permission. Nothing here opens a file a request names.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from moderation.api.auth import require
from moderation.queue.roles import Actor

router = APIRouter(tags=["images"])
_KEY = re.compile(r"^[0-9a-f]{32}$")
_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}


async def _index(request: Request) -> Any:
    checker = request.app.state.checker
    if checker is None:
        checker = await run_in_threadpool(request.app.state.get_checker)
    images = getattr(checker, "images", None)
    if images is None:
        raise HTTPException(404, "no image index is configured")
    return images.index


def _jpeg(data: bytes | None) -> Response:
    if data is None:
        raise HTTPException(404, "no such thumbnail")
    return Response(content=data, media_type="image/jpeg", headers=_HEADERS)


@router.get("/v1/images/indexed/{image_id:path}")
async def indexed_thumbnail(
    image_id: str, request: Request, _: Annotated[Actor, Depends(require("view"))]
) -> Response:
    """The thumbnail of an indexed image, by its id in the index."""
    if not image_id or len(image_id) > 1000:
        raise HTTPException(404, "no such thumbnail")
    index = await _index(request)
    return _jpeg(await run_in_threadpool(index.thumbnail, image_id))


@router.get("/v1/images/checked/{key}")
async def checked_thumbnail(
    key: str, request: Request, _: Annotated[Actor, Depends(require("view"))]
) -> Response:
    """The thumbnail of a checked image that matched (``images[].thumb`` of a check result)."""
    if not _KEY.match(key):
        raise HTTPException(404, "no such thumbnail")
    index = await _index(request)
    return _jpeg(await run_in_threadpool(index.query_thumbnail, key))
