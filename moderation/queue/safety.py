"""What both databases can store, and safe forms of what they cannot.

PostgreSQL refuses NUL (U+0000) in text, and neither backend can encode a lone surrogate
(U+D800–U+DFFF, which JSON can escape and Python's JSON decoder lets through). Free text a person
types (comments, notes, names, filters) with such characters is refused with 422 (``refuse_unstorable``);
a seller's listing is never refused for them: it is checked and stored with each such character
replaced by U+FFFD (one character for one, so finding offsets stay valid), and its queue item is
flagged ``sanitized``. A listing or seller id longer than its column (200) is stored as a prefix
plus a hash of the whole id (deterministic, so the same long id always maps to the same row) and
flagged ``long_id``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

#: Characters neither backend can store as text.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
#: Length of ``listings.id``, ``items.listing_id``, ``seller_id`` and ``outbox.listing_id``.
ID_LENGTH = 200
#: Signed 32-bit: ``INTEGER`` columns on PostgreSQL (SQLite's are 64-bit, so this is the tighter bound).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def has_unstorable(text: str) -> bool:
    return UNSTORABLE.search(text) is not None


def storable(text: str) -> str:
    """``text`` with every unstorable character replaced by U+FFFD (same length)."""
    return UNSTORABLE.sub(REPLACEMENT, text) if UNSTORABLE.search(text) else text


def storable_json(value: Any) -> tuple[Any, bool]:
    """A JSON-like value with every string (keys too) made storable, and whether anything changed."""
    changed = False

    def walk(v: Any) -> Any:
        nonlocal changed
        if isinstance(v, str):
            if UNSTORABLE.search(v):
                changed = True
                return UNSTORABLE.sub(REPLACEMENT, v)
            return v
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value), changed


def safe_id(value: str, length: int = ID_LENGTH) -> str:
    """An id that fits its column: storable, and a long one as its first characters, ``~`` and 24 hex
    digits of the SHA-256 of the whole (original) id."""
    clean = storable(value)
    if len(clean) <= length:
        return clean
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return clean[: length - 25] + "~" + digest


def refuse_unstorable(text: str) -> str:
    """A pydantic ``AfterValidator``: refuse text with NUL or a lone surrogate (422)."""
    if UNSTORABLE.search(text):
        raise ValueError("text contains NUL or an unpaired surrogate, which cannot be stored")
    return text


def like_pattern(fragment: str, escape: str = "\\") -> str:
    """``fragment`` with LIKE's wildcards (and the escape character) escaped, for ``LIKE … ESCAPE``."""
    return fragment.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


#: Text a client sends, refused (422) if no database could store it; an integer in the columns' range.
Text = Annotated[str, AfterValidator(refuse_unstorable)]
DbInt = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]
