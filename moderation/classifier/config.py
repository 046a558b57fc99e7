"""Model shape, names and locations shared by training and prediction.

The shape is chosen for CPU throughput: a 256-character listing must score in a few milliseconds on two
cores and a bulk audit must check hundreds of listings a second, which rules out the usual 768-wide
BERT. A 96-wide encoder scores about three times as fast as a 192-wide one and was as accurate on
held-out data, so the training data, not the width, limits accuracy (measurements: models/MODEL_CARD.md,
"Speed").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moderation.schema import CATEGORY_LABELS

if TYPE_CHECKING:
    from transformers import BertConfig

MODEL_NAME = "risk-zh-tiny"
MODEL_VERSION = "0.8.0"
#: Characters of listing text the model reads; longer text is truncated (the title and the start of the
#: description carry most claims, and the rules engine reads everything).
MAX_CHARS = 256
ENV_MODEL_DIR = "MODERATION_MODEL_DIR"
CALIBRATION_FILE = "calibration.json"
#: Label names stored in config.json so that a swapped-in checkpoint can say which index means "risky".
ID2LABEL = {0: "lawful", 1: "risky"}

#: Chinese names of the listing categories, used as the text prefix that lets the model condition on
#: the category (the same claim is lawful on health food and unlawful on ordinary food).
# The shipped models were trained with these prefixes: they are the schema's display labels except for
# `general`, which the model knows as 日用百货 (changing a prefix means retraining).
CATEGORY_ZH: dict[str, str] = {**CATEGORY_LABELS, "general": "日用百货"}


def repo_root() -> Path:
    """The repository root (two levels above this package), where `models/` and `var/` live."""
    return Path(__file__).resolve().parents[2]


def default_model_dir() -> Path:
    """Where load_model looks when no path is given: ``moderation.paths.model_dir()``
    ($MODERATION_MODEL_DIR, else risk-classifier in $MODERATION_MODELS_DIR or the shipped models/)."""
    from moderation.paths import model_dir

    return model_dir()


@dataclass(frozen=True)
class ModelSpec:
    """Encoder hyper-parameters; small on purpose (see module docstring)."""

    hidden_size: int = 96
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256
    max_chars: int = MAX_CHARS
    dropout: float = 0.1

    def bert_config(self, vocab_size: int, pad_token_id: int = 0) -> BertConfig:
        """A BertConfig for this shape; positions cover [CLS] + max_chars + [SEP] (imports transformers:
        only training builds one, loading reads config.json as JSON)."""
        from transformers import BertConfig

        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_chars + 2,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            type_vocab_size=1,
            pad_token_id=pad_token_id,
            num_labels=2,
            id2label=dict(ID2LABEL),
            label2id={v: k for k, v in ID2LABEL.items()},
        )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def listing_text(
    title: str = "",
    description: str = "",
    category: str | None = None,
    attributes: dict[str, str] | None = None,
) -> str:
    """The text the model was trained on for one listing: a category tag, then all checked fields.

    The tag (【食品】…) is how category-conditional claims reach a text-only model; texts without a tag
    are also seen in training, so score_texts on bare text works too, just without that context.
    """
    parts = [p for p in (title, description) if p]
    parts.extend(v for v in (attributes or {}).values() if v)
    body = "\n".join(parts)
    if category and category in CATEGORY_ZH:
        return f"【{CATEGORY_ZH[category]}】{body}"
    return body
