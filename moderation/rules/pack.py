"""Rule packs: YAML files in ``rules/packs/``, one per family, loaded and validated here.

A rule is data: adding one never needs code. Because a malformed pack silently disabling a rule would
be worse than a crash, loading validates every field and fails loudly with the file and line of the
offending rule (``RulePackError``). The format is documented in ``docs/rule-packs.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moderation.schema import CATEGORIES, SEVERITIES, VERDICTS
from moderation.text.normalise import fold_term

ACTIONS = VERDICTS  # a rule's action is the verdict it asks for
BOUNDARIES = ("token", "start", "end", "none")
_RULE_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_PACK_KEYS = {"family", "name", "description", "law", "severity", "action", "categories", "rules"}
_RULE_KEYS = {
    "id",
    "law",
    "severity",
    "action",
    "categories",
    "except_categories",
    "terms",
    "patterns",
    "anchors",
    "boundary",
    "exempt",
    "requires",
    "absent",
    "message",
    "suggestion",
    "examples",
    "note",
    "judge",
    "grammar",
    "rewrite",
    "obfuscated",
}
_CONTEXT_KEYS = {"phrases", "before", "after", "clause", "sentence", "attributes", "listing"}
_FRAME_KEYS = _CONTEXT_KEYS | {"reason", "explain"}
#: How ``rewrite`` (moderation/rules/rewrite.py) may fix a finding's span: delete it, keep only what the
#: claim's marker modifies (最受欢迎的 → 受欢迎的), or replace it with a phrase (``{replace: …}``).
REWRITES = ("drop", "keep_modified", "replace")
#: Claim grammars implemented in moderation/rules/grammar.py (a rule names one with ``grammar``).
GRAMMARS = ("superlative",)
#: ``{@name}`` in a regular expression stands for the words of lexicon ``rules/lexicons/name.txt``;
#: ``{@name[tag]}`` (and ``@name[tag]`` in a term list) for the words whose other columns include ``tag``.
_LEXICON_REF = re.compile(r"\{@([a-z0-9_]+)(?:\[([a-z0-9_-]+)\])?\}")
#: ``{=name}`` stands for the shared expression piece ``name`` of ``rules/lexicons/fragments.yaml``.
_FRAGMENT_REF = re.compile(r"\{=([a-z0-9_]+)\}")
_TERM_REF = re.compile(r"@([a-z0-9_]+)(?:\[([a-z0-9_-]+)\])?")


class RulePackError(ValueError):
    """A rule pack that cannot be used; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    category: str = "general"
    attributes: dict[str, str] = field(default_factory=dict)
    field: str = "title"


@dataclass(frozen=True, slots=True)
class Context:
    """Regular expressions (on folded text) and phrases that describe a claim's surroundings.

    As an exemption it is a named judgement: ``reason`` is a stable code (``usage_tip``,
    ``spec_limit``…) and ``explain`` the Chinese sentence a reviewer sees when it lets a candidate pass.
    """

    reason: str = "context"
    explain: str = ""
    phrases: tuple[str, ...] = ()
    before: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None
    clause: re.Pattern[str] | None = None
    sentence: re.Pattern[str] | None = None
    attributes: re.Pattern[str] | None = None
    listing: re.Pattern[str] | None = None

    def is_empty(self) -> bool:
        return (
            not self.phrases
            and self.before is None
            and self.after is None
            and self.clause is None
            and self.sentence is None
            and self.attributes is None
            and self.listing is None
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    family: str
    law: str
    severity: str
    action: str | None
    categories: frozenset[str] | None  # None: every category
    except_categories: frozenset[str]
    terms: tuple[str, ...]  # folded
    patterns: tuple[re.Pattern[str], ...]
    anchors: tuple[str, ...]  # folded
    absent: tuple[str, ...]  # folded: fires when none of these phrases is in the listing
    boundary: str
    exempt: tuple[Context, ...]  # named judgements; any one that holds lets the candidate pass
    requires: Context
    grammar: str | None
    message: str
    suggestion: str | None
    fire: tuple[Example, ...]
    pass_: tuple[Example, ...]
    source: str  # "file:line", for error messages and the rules listing
    #: How a finding's span can be rewritten: ("drop", ""), ("keep_modified", "") or ("replace", phrase).
    rewrite: tuple[str, str] | None = None
    #: Fire only where the original text hides the match with symbols inside it (古*驰, N I K E).
    obfuscated: bool = False

    def applies_to(self, category: str) -> bool:
        if category in self.except_categories:
            return False
        return self.categories is None or category in self.categories


@dataclass(frozen=True, slots=True)
class Pack:
    family: str
    name: str
    path: Path
    rules: tuple[Rule, ...]


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster when present


class _LineLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that remembers the line of every mapping, so errors can name it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = dict(loader.construct_mapping(node, deep=True))
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _fail(where: str, message: str) -> RulePackError:
    return RulePackError(f"{where}: {message}")


class Lexicons:
    """Word lists in ``rules/lexicons/`` that rules share: ``@name`` in terms or anchors, ``{@name}`` in a
    regular expression. Every lexicon must say where its words come from (a ``# source:`` line), because a
    term list nobody can trace is a list nobody can correct."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._rows: dict[str, tuple[tuple[str, ...], ...]] = {}
        # One lexicon is spelled into many rules' expressions: build its trie once.
        self._alternations: dict[tuple[str, str | None], str] = {}
        self._fragments: dict[str, Fragment] | None = None

    def fragments(self) -> dict[str, Fragment]:
        """The shared expression pieces of ``fragments.yaml`` beside the word lists, checked on load."""
        if self._fragments is None:
            path = self.directory / "fragments.yaml" if self.directory is not None else None
            self._fragments = load_fragments(path) if path is not None and path.is_file() else {}
        return self._fragments

    def rows(self, name: str, where: str) -> tuple[tuple[str, ...], ...]:
        """The lexicon's lines as tab-separated columns, the first (the word) folded."""
        if name in self._rows:
            return self._rows[name]
        if self.directory is None:
            raise _fail(where, f"lexicon @{name}: no lexicon folder")
        path = self.directory / f"{name}.txt"
        if not path.is_file():
            raise _fail(where, f"lexicon @{name}: {path} not found")
        rows: list[tuple[str, ...]] = []
        has_source = False
        with path.open(encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.strip()
                if line.startswith("#"):
                    has_source = has_source or line[1:].strip().lower().startswith("source:")
                    continue
                if not line:
                    continue
                cols = [c.strip() for c in line.split("\t")]
                folded = fold_term(cols[0])
                if not folded:
                    raise _fail(f"{path}:{lineno}", f"{cols[0]!r} is empty after folding")
                rows.append((folded, *cols[1:]))
        if not has_source:
            raise _fail(f"{path}", "a lexicon needs a '# source:' line saying where its words come from")
        if not rows:
            raise _fail(f"{path}", "the lexicon is empty")
        self._rows[name] = tuple(rows)
        return self._rows[name]

    def words(self, name: str, where: str, tag: str | None = None) -> tuple[str, ...]:
        rows = self.rows(name, where)
        if tag is not None:
            rows = tuple(row for row in rows if tag in row[1:])
            if not rows:
                raise _fail(where, f"lexicon @{name}[{tag}]: no entry has the tag {tag!r}")
        return tuple(dict.fromkeys(row[0] for row in rows))

    def expand(self, pattern: str, where: str) -> str:
        """Replace ``{@name}`` by an alternation of the lexicon's words, longest first."""

        def alternation(m: re.Match[str]) -> str:
            key = (m.group(1), m.group(2))
            if key not in self._alternations:
                self._alternations[key] = trie_regex(self.words(key[0], where, key[1]))
            return self._alternations[key]

        def fragment(m: re.Match[str]) -> str:
            known = self.fragments()
            if m.group(1) not in known:
                names = ", ".join(sorted(known)) or "none"
                raise _fail(
                    where, f"fragment {{={m.group(1)}}} is not defined in fragments.yaml; known: {names}"
                )
            return known[m.group(1)].regex

        if "{=" in pattern:
            pattern = _FRAGMENT_REF.sub(fragment, pattern)
        return _LEXICON_REF.sub(alternation, pattern)

    def terms(self, items: list[Any], where: str) -> list[str]:
        """Terms or anchors with ``@name`` entries replaced by the lexicon's words."""
        out: list[str] = []
        for item in items:
            text = str(item)
            ref = _TERM_REF.fullmatch(text)
            if ref is not None:
                out.extend(self.words(ref.group(1), where, ref.group(2)))
            else:
                out.append(fold_term(text))
        return out


_NO_LEXICONS = Lexicons(None)


@dataclass(frozen=True)
class Fragment:
    """A piece of regular expression that many rules share (the negator 不 that is not 不仅/不但), so a
    fix to what it means is made once; ``matches``/``rejects`` are the strings it must and must not match
    at their start, run by the suite like a rule's examples."""

    name: str
    regex: str
    explain: str
    matches: tuple[str, ...]
    rejects: tuple[str, ...]

    def check(self) -> list[str]:
        """What is wrong with this fragment, as messages (empty when nothing is): an expression that does
        not compile, or examples it gets wrong."""
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            return [f"{self.name}: regex {self.regex!r} is not valid: {exc}"]
        wrong = [
            f"{self.name}: should match the start of {t!r}" for t in self.matches if not compiled.match(t)
        ]
        wrong += [
            f"{self.name}: should not match the start of {t!r}" for t in self.rejects if compiled.match(t)
        ]
        return wrong


def _named_entries(path: Path, key: str, what: str) -> Iterator[tuple[str, Any, str]]:
    """The ``name: mapping`` entries under ``key`` of a shared YAML file (frames, fragments), each with
    the ``file:line: what name`` prefix its errors carry."""
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise RulePackError(f"{path}: not valid YAML: {exc}") from None
    entries = (data or {}).get(key)
    if not isinstance(entries, dict):
        raise RulePackError(f"{path}: expected a mapping '{key}: {{name: {what}}}'")
    for name, raw in entries.items():
        if name == "__line__":
            continue
        line = raw.get("__line__", "?") if isinstance(raw, dict) else "?"
        yield str(name), raw, f"{path}:{line}: {what} {name}"


def load_fragments(path: Path) -> dict[str, Fragment]:
    """``fragments.yaml``: ``fragments: {name: {explain, regex, matches, rejects}}``; every fragment must
    compile and carry examples both ways, because a shared piece that is wrong is wrong in every rule."""
    out: dict[str, Fragment] = {}
    for name, raw, where in _named_entries(path, "fragments", "fragment"):
        if not isinstance(raw, dict) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise RulePackError(f"{where}: a fragment is a mapping under a lower-case name")
        unknown = set(raw) - {"regex", "explain", "matches", "rejects", "__line__"}
        if unknown:
            raise RulePackError(f"{where}: unknown keys {sorted(unknown)}")
        regex = raw.get("regex")
        if not isinstance(regex, str) or not regex or "{@" in regex or "{=" in regex:
            raise RulePackError(
                f"{where}: regex must be a non-empty expression without {{@…}}/{{=…}} references"
            )
        matches = tuple(str(t) for t in _as_list(raw.get("matches"), where, "matches"))
        rejects = tuple(str(t) for t in _as_list(raw.get("rejects"), where, "rejects"))
        explain = str(raw.get("explain", "")).strip()
        if not explain or not matches or not rejects:
            raise RulePackError(f"{where}: a fragment needs explain, matches and rejects")
        fragment = Fragment(name, f"(?:{regex})", explain, matches, rejects)
        wrong = fragment.check()
        if wrong:
            raise RulePackError(f"{where}: {'; '.join(wrong)}")
        out[name] = fragment
    return out


#: A trie node with this many branches or more is guarded by the class of their first characters.
_GUARD_BRANCHES = 8


def trie_regex(words: Iterable[str], *, guard_root: bool = True) -> str:
    """One regular expression for a word list, as a trie: 北京|北京市|北海 → 北(?:京(?:市)?|海).

    Python's re tries the alternatives of a flat alternation one by one at every position, so a
    lexicon of a thousand words costs a thousand attempts per character; the trie shares prefixes.
    Longer words win, as with a longest-first alternation. A node with many branches still tries
    them one by one, so it is guarded by a lookahead for the class of their first characters: at most
    positions one test fails it at once (the lookahead consumes nothing and captures nothing, so the
    matches are exactly those of the unguarded trie). ``guard_root=False`` leaves the first node
    unguarded: an expression that is the trie alone then starts with a branch of literals, from which
    ``re`` takes the set of first characters and skips to them in C (``search`` is several times faster
    than through the guard, which ``re`` has to evaluate at every position)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any], guard: bool = True) -> str:
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        if len(branches) == 1 and not ends:
            body = branches[0]
            return body
        joined = "|".join(branches)
        if guard and len(branches) >= _GUARD_BRANCHES:
            first = "".join(re.escape(ch) for ch in sorted(node) if ch)
            joined = f"(?=[{first}])(?:{joined})"
        return f"(?:{joined})?" if ends else f"(?:{joined})"

    return "(?:" + build(trie, guard_root) + ")"


def _as_list(value: Any, where: str, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise _fail(where, f"{what} must be a list")
    return value


def _compile(pattern: Any, where: str, what: str, lexicons: Lexicons = _NO_LEXICONS) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise _fail(where, f"{what} must be a non-empty regular expression string")
    if "{@" in pattern or "{=" in pattern:
        pattern = lexicons.expand(pattern, where)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _fail(where, f"{what} {pattern!r} is not a valid regular expression: {exc}") from None


def _categories(value: Any, where: str, what: str) -> frozenset[str] | None:
    items = _as_list(value, where, what)
    if not items or items == ["all"]:
        return None
    unknown = [c for c in items if c not in CATEGORIES]
    if unknown:
        raise _fail(where, f"{what} has unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    return frozenset(items)


def _context(
    value: Any, where: str, what: str, lexicons: Lexicons = _NO_LEXICONS, named: bool = False
) -> Context:
    if value is None:
        return Context()
    if not isinstance(value, dict):
        raise _fail(where, f"{what} must be a mapping")
    allowed = _FRAME_KEYS if named else _CONTEXT_KEYS
    unknown = set(value) - allowed - {"__line__"}
    if unknown:
        raise _fail(where, f"{what} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    phrases = tuple(lexicons.terms(_as_list(value.get("phrases"), where, f"{what}.phrases"), where))
    if any(not p for p in phrases):
        raise _fail(where, f"{what}.phrases has an entry that is empty after folding")
    regexes: dict[str, re.Pattern[str] | None] = {}
    for key in ("before", "after", "clause", "sentence", "attributes", "listing"):
        raw = value.get(key)
        if isinstance(raw, list):
            raw = "|".join(f"(?:{r})" for r in raw)
        regexes[key] = _compile(raw, where, f"{what}.{key}", lexicons) if raw is not None else None
    reason = str(value.get("reason", "context"))
    if named and not re.fullmatch(r"[a-z][a-z0-9_]*", reason):
        raise _fail(where, f"{what}.reason {reason!r} must be a lower-case code such as usage_tip")
    return Context(reason=reason, explain=str(value.get("explain", "")).strip(), phrases=phrases, **regexes)


def _exemptions(
    value: Any, judge: Any, frames: dict[str, Context], where: str, lexicons: Lexicons
) -> tuple[Context, ...]:
    """A rule's exemptions: its own contexts (one mapping, or a list of named ones) plus shared frames."""
    out: list[Context] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            ctx = _context(item, where, f"exempt[{i}]", lexicons, named=True)
            if ctx.is_empty():
                raise _fail(where, f"exempt[{i}] has no context")
            out.append(ctx)
    elif value is not None:
        ctx = _context(value, where, "exempt", lexicons)
        if not ctx.is_empty():
            out.append(ctx)
    for name in _as_list(judge, where, "judge"):
        if name not in frames:
            raise _fail(where, f"judge names unknown frame {name!r}; known: {', '.join(sorted(frames))}")
        out.append(frames[name])
    return tuple(out)


def load_frames(path: Path, lexicons: Lexicons = _NO_LEXICONS) -> dict[str, Context]:
    """Shared exemption frames (``rules/frames.yaml``): SAMR's exemptions written once, named, explained."""
    if not path.is_file():
        return {}
    frames: dict[str, Context] = {}
    for name, raw, where in _named_entries(path, "frames", "frame"):
        if not isinstance(raw, dict) or not str(raw.get("explain", "")).strip():
            raise RulePackError(f"{where}: a frame needs explain (the Chinese sentence a reviewer reads)")
        ctx = _context({"reason": name, **raw}, where, name, lexicons, named=True)
        if ctx.is_empty():
            raise RulePackError(f"{where}: a frame needs at least one context")
        frames[name] = ctx
    return frames


def _examples(value: Any, where: str, what: str) -> tuple[Example, ...]:
    out: list[Example] = []
    for item in _as_list(value, where, what):
        if isinstance(item, str):
            out.append(Example(item))
        elif isinstance(item, dict):
            text = item.get("text")
            if not isinstance(text, str) or not text:
                raise _fail(f"{where.split(':')[0]}:{item.get('__line__', '?')}", f"{what} entry needs text")
            category = item.get("category", "general")
            if category not in CATEGORIES:
                raise _fail(where, f"{what} entry has unknown category {category!r}")
            attributes = {str(k): str(v) for k, v in (item.get("attributes") or {}).items()}
            out.append(Example(text, category, attributes, str(item.get("field", "title"))))
        else:
            raise _fail(where, f"{what} entries must be strings or mappings with text")
    return tuple(out)


def _rewrite(value: Any, where: str) -> tuple[str, str] | None:
    """``rewrite: drop`` / ``rewrite: keep_modified`` / ``rewrite: {replace: 适合日常使用}``."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in ("drop", "keep_modified"):
            raise _fail(where, f"rewrite must be drop, keep_modified or {{replace: phrase}}, not {value!r}")
        return (value, "")
    if isinstance(value, dict):
        keys = set(value) - {"__line__"}
        phrase = value.get("replace")
        if keys != {"replace"} or not isinstance(phrase, str) or not phrase.strip():
            raise _fail(where, "rewrite as a mapping takes one key, replace, with a non-empty phrase")
        return ("replace", phrase.strip())
    raise _fail(where, "rewrite must be drop, keep_modified or {replace: phrase}")


def _rule(
    raw: Any,
    pack: dict[str, Any],
    path: Path,
    lexicons: Lexicons = _NO_LEXICONS,
    frames: dict[str, Context] | None = None,
) -> Rule:
    if not isinstance(raw, dict):
        raise _fail(str(path), "every entry under rules must be a mapping")
    where = f"{path}:{raw.get('__line__', '?')}"
    unknown = set(raw) - _RULE_KEYS - {"__line__"}
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID_RE.match(rule_id):
        raise _fail(where, f"rule id {rule_id!r} must look like 'family.name' (lower case, dots)")
    where = f"{where}: rule {rule_id}"
    law = raw.get("law", pack.get("law"))
    if not isinstance(law, str) or not law.strip():
        raise _fail(where, "a rule without a law citation is not a rule: give law")
    severity = raw.get("severity", pack.get("severity"))
    if severity not in SEVERITIES:
        raise _fail(where, f"severity must be one of {SEVERITIES}, not {severity!r}")
    action = raw.get("action", pack.get("action"))
    if action is not None and action not in ACTIONS:
        raise _fail(where, f"action must be one of {ACTIONS}, not {action!r}")
    categories = _categories(raw.get("categories", pack.get("categories")), where, "categories")
    except_categories = _categories(raw.get("except_categories"), where, "except_categories") or frozenset()
    terms = tuple(lexicons.terms(_as_list(raw.get("terms"), where, "terms"), where))
    if any(not t for t in terms):
        raise _fail(where, "a term is empty after folding (only spaces or symbols?)")
    patterns = tuple(
        _compile(p, where, "pattern", lexicons) for p in _as_list(raw.get("patterns"), where, "patterns")
    )
    anchors = tuple(lexicons.terms(_as_list(raw.get("anchors"), where, "anchors"), where))
    absent = tuple(fold_term(str(a)) for a in _as_list(raw.get("absent"), where, "absent"))
    if any(not a for a in anchors) or any(not a for a in absent):
        raise _fail(where, "an anchor or absent phrase is empty after folding (only spaces or symbols?)")
    if patterns and not anchors:
        raise _fail(where, "patterns need anchors: literal strings one of which every match contains")
    grammar = raw.get("grammar")
    if grammar is not None and grammar not in GRAMMARS:
        raise _fail(where, f"grammar must be one of {GRAMMARS}, not {grammar!r}")
    if grammar is not None and (not anchors or terms or patterns):
        raise _fail(where, "a grammar rule takes anchors (its markers) and no terms or patterns")
    if not terms and not patterns and not absent and grammar is None:
        raise _fail(where, "a rule needs terms, patterns (with anchors), a grammar or absent phrases")
    boundary = raw.get("boundary", "token")
    if boundary not in BOUNDARIES:
        raise _fail(where, f"boundary must be one of {BOUNDARIES}")
    message = raw.get("message")
    if not isinstance(message, str) or not message.strip():
        raise _fail(where, "message (one line of Chinese saying why) is required")
    suggestion = raw.get("suggestion")
    if suggestion is not None and not isinstance(suggestion, str):
        raise _fail(where, "suggestion must be text")
    rewrite = _rewrite(raw.get("rewrite"), where)
    obfuscated = raw.get("obfuscated", False)
    if not isinstance(obfuscated, bool):
        raise _fail(where, "obfuscated must be true or false")
    examples = raw.get("examples") or {}
    if not isinstance(examples, dict):
        raise _fail(where, "examples must be a mapping with fire and pass lists")
    fire = _examples(examples.get("fire"), where, "examples.fire")
    pass_ = _examples(examples.get("pass"), where, "examples.pass")
    if not fire or not pass_:
        raise _fail(where, "every rule needs examples that must fire and examples that must not")
    return Rule(
        id=rule_id,
        family=pack["family"],
        law=law.strip(),
        severity=severity,
        action=action,
        categories=categories,
        except_categories=except_categories,
        terms=terms,
        patterns=patterns,
        anchors=anchors,
        absent=absent,
        boundary=boundary,
        exempt=_exemptions(raw.get("exempt"), raw.get("judge"), frames or {}, where, lexicons),
        requires=_context(raw.get("requires"), where, "requires", lexicons),
        grammar=grammar,
        message=message.strip(),
        suggestion=suggestion.strip() if isinstance(suggestion, str) else None,
        fire=fire,
        pass_=pass_,
        source=where.split(": rule")[0],
        rewrite=rewrite,
        obfuscated=obfuscated,
    )


def load_pack(
    path: Path, lexicons: Lexicons = _NO_LEXICONS, frames: dict[str, Context] | None = None
) -> Pack:
    """Load and validate one pack file."""
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulePackError(f"{path}{line}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulePackError(f"{path}: a rule pack must be a mapping with family and rules")
    unknown = set(data) - _PACK_KEYS - {"__line__"}
    if unknown:
        raise RulePackError(f"{path}: unknown top-level keys {sorted(unknown)}")
    family = data.get("family")
    if family != path.stem:
        raise RulePackError(f"{path}:1: family {family!r} must equal the file name {path.stem!r}")
    rules_raw = data.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise RulePackError(f"{path}: rules must be a non-empty list")
    rules = tuple(_rule(r, data, path, lexicons, frames) for r in rules_raw)
    return Pack(family=family, name=str(data.get("name", family)), path=path, rules=rules)


def load_packs(packs_dir: Path) -> list[Pack]:
    """Load every ``*.yaml`` pack in a folder (with the rules folder's lexicons and shared frames);
    rule ids must be unique across packs."""
    if not packs_dir.is_dir():
        raise RulePackError(f"{packs_dir}: rule pack folder not found")
    lexicons = Lexicons(packs_dir.parent / "lexicons")
    frames = load_frames(packs_dir.parent / "frames.yaml", lexicons)
    packs = [load_pack(p, lexicons, frames) for p in sorted(packs_dir.glob("*.yaml"))]
    if not packs:
        raise RulePackError(f"{packs_dir}: no rule packs (*.yaml) found")
    seen: dict[str, str] = {}
    for pack in packs:
        for rule in pack.rules:
            if rule.id in seen:
                raise RulePackError(f"{rule.source}: rule id {rule.id} is already defined at {seen[rule.id]}")
            seen[rule.id] = rule.source
    return packs
