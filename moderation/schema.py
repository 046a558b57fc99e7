"""The service's data contract: a Listing in, a CheckResult out (field by field: docs/contracts.md).

Everything that crosses a boundary (CLI, HTTP, audit files, the queue) goes through these models so
that the shapes outside checks rely on are defined in exactly one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CATEGORIES: tuple[str, ...] = (
    "general",
    "food",
    "health_food",
    "cosmetics",
    "drug",
    "medical_device",
    "medical_service",
    "baby",
    "apparel",
    "education",
    "finance",
    "real_estate",
    "agriculture",
    "alcohol",
    "tobacco",
)

Severity = Literal["low", "medium", "high", "critical"]
Verdict = Literal["pass", "review", "block"]

# -- the shared vocabulary: order, ranks and the Chinese every screen and report uses ---------------

#: Mildest first; a rank is the index (``SEVERITY_RANK["critical"] == 3``).
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
VERDICTS: tuple[Verdict, ...] = ("pass", "review", "block")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}
VERDICT_RANK: dict[str, int] = {v: i for i, v in enumerate(VERDICTS)}
#: Most severe first (the order screens list them in). ``low`` is advice, hence 提示.
SEVERITY_LABELS: dict[str, str] = {"critical": "严重", "high": "高", "medium": "中", "low": "提示"}
VERDICT_LABELS: dict[str, str] = {"block": "拦截", "review": "待人工审核", "pass": "通过"}
#: Display names of the categories (the classifier's text prefix, ``classifier.config.CATEGORY_ZH``, is
#: model input and stays as trained).
CATEGORY_LABELS: dict[str, str] = {
    "general": "综合",
    "food": "食品",
    "health_food": "保健食品",
    "cosmetics": "化妆品",
    "drug": "药品",
    "medical_device": "医疗器械",
    "medical_service": "医疗服务",
    "baby": "母婴",
    "apparel": "服饰",
    "education": "教育培训",
    "finance": "金融理财",
    "real_estate": "房地产",
    "agriculture": "农资",
    "alcohol": "酒类",
    "tobacco": "烟草",
}


def max_severity(severities: Iterable[str]) -> str | None:
    """The most severe of ``severities`` (None for none)."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default=None)


#: Largest text field we accept. A 1 MB description is checked; anything beyond this is refused with a
#: clear error instead of tying up a worker (the contract asks for an error, never a crash).
MAX_FIELD_CHARS = 2_000_000


class ListingError(ValueError):
    """A listing that cannot be checked; carries a stable error code for the result's ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Listing(BaseModel):
    """A seller's listing as submitted for checking."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    title: str = ""
    description: str = ""
    category: str = "general"
    seller_id: str | None = None
    brand: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        # Integer ids are common in exported catalogues; accept them as text.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("title", "description", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("category", mode="before")
    @classmethod
    def _category_known(cls, v: Any) -> Any:
        if v is None or v == "":
            return "general"
        if v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of: {', '.join(CATEGORIES)}")
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes_as_text(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, dict):
            return {str(k): "" if val is None else str(val) for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _has_text(self) -> Listing:
        if not self.title.strip() and not self.description.strip():
            raise ValueError("a listing needs a non-empty title or description")
        for name, value in self.text_fields():
            if len(value) > MAX_FIELD_CHARS:
                raise ValueError(f"field {name} has {len(value)} characters; the limit is {MAX_FIELD_CHARS}")
        return self

    def text_fields(self) -> list[tuple[str, str]]:
        """The fields the checks read, named as a finding's ``field``."""
        fields = [("title", self.title), ("description", self.description)]
        fields.extend((f"attributes.{k}", v) for k, v in self.attributes.items())
        return [(name, text) for name, text in fields if text]

    def text(self) -> str:
        """All checked text as one string, for the classifier."""
        return "\n".join(text for _, text in self.text_fields())


class Finding(BaseModel):
    """One violation (or piece of advice) found in one field, with the span the seller typed."""

    rule: str
    family: str
    law: str
    severity: Severity
    field: str
    start: int
    end: int
    text: str
    message: str
    suggestion: str | None = None
    action: Verdict = "review"
    #: Optional, only on findings in text read from a picture (``field`` ``image:N``): the box
    #: ``[x1, y1, x2, y2]`` of the offending line in that picture's pixels (docs/ocr.md); absent otherwise.
    box: list[int] | None = None


class ExplanationSpan(BaseModel):
    """Words of one field that drove a classifier score (``CheckResult.classifier.explanation``).

    ``start``/``end`` index the field's text as submitted (like a finding's span). ``weight`` is the
    span's share of the drop in the model's margin when words are deleted (occlusion; the spans of
    one explanation add up to at most 1). ``score_without`` is the score
    the listing gets with this span deleted (occlusion), when it was measured.
    """

    field: str
    start: int
    end: int
    text: str
    weight: float
    score_without: float | None = None


class LawfulWordingInfo(BaseModel):
    """Why a high score was not acted on: the text is wording a regulation permits or requires."""

    sets: list[str]
    explain: str
    share: float


class ClassifierScore(BaseModel):
    score: float
    model: str
    #: Optional: present when the score sends the listing to review with no rule finding (or when an
    #: explanation was asked for): the words that drove the score, strongest first.
    explanation: list[ExplanationSpan] | None = None
    #: Optional: present when the score alone would send the listing to review but the rules recognised
    #: its text as lawful wording (rules/lawful_wording.yaml), so the score was not acted on.
    lawful_wording: LawfulWordingInfo | None = None


class ImageMatchInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    image: str | None = None
    distance: int
    hash: str | None = None


class ImageResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    image: str
    match: ImageMatchInfo | None = None
    error: dict[str, str] | None = None
    #: With OCR on: the text read from the picture, its lines and boxes (moderation/ocr, docs/ocr.md).
    ocr: dict[str, Any] | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class CategoryInference(BaseModel):
    """The category the rules used for a listing that arrived as ``general``, and why."""

    category: str
    confidence: float
    evidence: list[str] = Field(default_factory=list)


class CheckResult(BaseModel):
    id: str | None
    verdict: Verdict | None = None
    risk: float | None = None
    findings: list[Finding] = Field(default_factory=list)
    classifier: ClassifierScore | None = None
    images: list[ImageResult] = Field(default_factory=list)
    error: ErrorInfo | None = None
    #: Optional: ``true`` when the rules engine capped the candidates or findings of a hostile listing
    #: (the findings shown are a prefix); absent otherwise.
    truncated: bool | None = None
    #: Optional: present when the listing arrived as ``general`` and the rules ran with an inferred
    #: category instead (what it sells, how sure, and the words that said so).
    category_inferred: CategoryInference | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The contract's JSON: omit what is absent, keep what is there."""
        data = self.model_dump(exclude_none=True)
        data = {"id": self.id, **data}  # always present, null when the line had no usable id
        data.setdefault("findings", [])
        return data

    @classmethod
    def failed(cls, listing_id: str | None, code: str, message: str) -> CheckResult:
        return cls(id=listing_id, error=ErrorInfo(code=code, message=message), findings=[])


def parse_listing(data: Any) -> Listing:
    """Validate raw JSON-like data into a Listing, raising ListingError with a stable code."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise ListingError("invalid_listing", "a listing must be a JSON object")
    if "id" not in data or data.get("id") in (None, ""):
        raise ListingError("missing_id", "the listing has no id")
    try:
        return Listing.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "listing"
        msg = str(first.get("msg", "invalid listing")).removeprefix("Value error, ")
        code = "unknown_category" if "unknown category" in msg else "invalid_listing"
        if "non-empty title or description" in msg:
            code = "empty_text"
        elif "the limit is" in msg:
            code = "text_too_long"
        raise ListingError(code, f"{loc}: {msg}" if loc != "listing" else msg) from None


def read_json_line(text: str, line: int) -> Any:
    """One JSON Lines record as ``Checker.check_many`` takes it: the parsed value, or, when the line is
    not JSON, the ``malformed_json`` result (``line N: …``) that stands in its place."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return CheckResult.failed(None, "malformed_json", f"line {line}: {exc.msg} at column {exc.colno}")
