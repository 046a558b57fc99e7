"""Which images a check may read: bytes, files under one configured root, never arbitrary server paths.

A listing names its images. On a server the listing comes from a seller, so a path in it must not make
the server open whatever file that path names (``/etc/shadow``, another tenant's upload) or tell the
caller whether such a file exists. :class:`ImageSources` turns a listing's image reference into
something to decode:

- ``data:image/...;base64,...`` - the image itself (bytes), always accepted (up to ``MAX_FILE_BYTES``);
- a path or ``file://`` URL - only under the configured root (``MODERATION_IMAGE_ROOT``; a relative
  path is an id in that store), checked **after resolving symlinks and ``..``**, and refused with the
  same ``path_not_allowed`` error whether or not the file exists outside it; without a root no path
  is accepted at all;
- ``http(s)://`` - refused (``remote_not_supported``): a moderation worker does not fetch URLs a seller
  chose; any other scheme is ``unsupported_url``.

Command-line tools run by an operator on their own files use ``ImageSources(any_path=True)``.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from moderation.images.hashing import MAX_FILE_BYTES, ImageError
from moderation.settings import settings

ENV_ROOT = "MODERATION_IMAGE_ROOT"

_NOT_ALLOWED = "image paths are accepted only under the configured image root"


class ImageSources:
    """Resolves image references to bytes or a file under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, any_path: bool = False) -> None:
        self.any_path = any_path
        self.root = Path(os.path.realpath(root)) if root else None

    @classmethod
    def from_env(cls) -> ImageSources:
        return cls(settings().image_root)

    def open(self, ref: str) -> bytes | Path:
        """Bytes of a ``data:`` URI or the resolved file to decode; raises :class:`ImageError`."""
        if not isinstance(ref, str) or not ref:
            raise ImageError("unreadable_image", "empty image reference")
        if ref[:5].lower() == "data:":
            return _data_uri(ref)
        parsed = urlparse(ref) if "\x00" not in ref else None
        scheme = parsed.scheme.lower() if parsed else ""
        if scheme in ("http", "https"):
            raise ImageError(
                "remote_not_supported", "remote images are not fetched; send the image data instead"
            )
        if scheme == "file":
            text = unquote(parsed.path) if parsed else ref
        elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
            raise ImageError("unsupported_url", f"unsupported image URL scheme {scheme!r}")
        else:
            text = ref
        if self.any_path:
            return Path(text)
        if self.root is None:
            raise ImageError(
                "path_not_allowed",
                f"{_NOT_ALLOWED}, and none is configured ({ENV_ROOT}); send the image as a data: URI",
            )
        if "\x00" in text:
            raise ImageError("path_not_allowed", _NOT_ALLOWED)
        candidate = Path(text) if os.path.isabs(text) else self.root / text
        # realpath resolves symlinks and '..' without requiring the file to exist; the answer for a path
        # outside the root is the same whether or not anything is there.
        real = Path(os.path.realpath(candidate))
        if real != self.root and self.root not in real.parents:
            raise ImageError("path_not_allowed", _NOT_ALLOWED)
        return real

    def describe(self, ref: str) -> str:
        """How to name ``ref`` in messages: a data URI by its length, a path as given."""
        return f"<data URI, {len(ref)} characters>" if ref[:5].lower() == "data:" else ref


def _data_uri(ref: str) -> bytes:
    head, sep, payload = ref.partition(",")
    if not sep or not head.lower().endswith(";base64"):
        raise ImageError("unreadable_image", "a data: image must be base64 (data:image/...;base64,...)")
    if len(payload) > (MAX_FILE_BYTES * 4) // 3 + 4:
        raise ImageError("image_too_large", f"image data over {MAX_FILE_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("unreadable_image", "the data: image is not valid base64") from None
