"""The rules' hot modules compiled with mypyc, and the guard that never lets a stale build run.

The same typed source is the one path: ``scripts/build_native.py`` (run by ``make setup``) compiles the
modules of ``MODULES`` into C extensions next to their sources, and Python imports an extension in
preference to its ``.py``. Without a compiler, or after ``make clean-native``, the package runs from
source with the same answers, only slower (docs/platform-rules.md, the speed section).

An extension built from an older source would silently run old code after an edit, so the build
writes the SHA-256 of each compiled source to ``STAMP_NAME`` in the package and ``guard()`` (called when the package is
imported, before any of these modules is) compares them: on any difference it removes the whole build,
since compiled modules call each other directly and cannot be mixed with newer sources, and warns.
``MODERATION_NATIVE=0`` runs from source with a build in place (benchmarks and the equivalence test
compare the two that way).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

#: The modules compiled, in the order of the check's flow (fold, cut, scan, judge).
MODULES: tuple[str, ...] = (
    "moderation.text.normalise",
    "moderation.text.tokenise",
    "moderation.rules.context",
    "moderation.rules.grammar",
    "moderation.rules.judge",
    "moderation.rules.category",
    "moderation.rules.engine",
)
#: The group name mypyc gives the shared library all of them live in: a module of the package
#: (``moderation/native_lib__mypyc.*.so``), so that it is found wherever the package is, also by the
#: console scripts of an editable install, which do not put the repository on ``sys.path``.
GROUP = "moderation.native_lib"
PACKAGE_DIR = Path(__file__).resolve().parent
STAMP_NAME = "native.stamp.json"


def source_of(module: str, root: Path) -> Path:
    """The ``.py`` file of a dotted module name under ``root`` (the folder holding ``moderation/``)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_files(root: Path) -> list[Path]:
    """Every file of a build under ``root``: each module's extension and the group's shared library."""
    files = [
        p
        for module in MODULES
        for p in source_of(module, root).parent.glob(module.rsplit(".", 1)[1] + ".*.so")
    ]
    package, _, name = GROUP.rpartition(".")
    files += root.joinpath(*package.split(".")).glob(f"{name}__mypyc.*.so")
    return sorted(files)


def remove_build(root: Path) -> None:
    """Delete every file of a build under ``root`` and its stamp (OSError when one cannot be)."""
    for path in compiled_files(root):
        path.unlink()
    (root / "moderation" / STAMP_NAME).unlink(missing_ok=True)


def digests(root: Path) -> dict[str, str]:
    """The SHA-256 of each compiled module's source."""
    return {m: hashlib.sha256(source_of(m, root).read_bytes()).hexdigest() for m in MODULES}


def write_stamp(root: Path) -> None:
    """Record the sources a build was made from (``scripts/build_native.py``, after compiling)."""
    (root / "moderation" / STAMP_NAME).write_text(json.dumps(digests(root), indent=1) + "\n")


def stale_modules(root: Path) -> list[str]:
    """The compiled modules whose source differs from the one they were built from (every module
    when the stamp is missing or unreadable); empty when nothing is compiled."""
    if not compiled_files(root):
        return []
    try:
        built = json.loads((root / "moderation" / STAMP_NAME).read_text())
    except (OSError, ValueError):
        built = {}
    now = digests(root)
    return [m for m in MODULES if built.get(m) != now[m]]


def is_compiled(module: str) -> bool:
    """Whether an imported module runs compiled (its file is an extension, not ``.py``)."""
    mod = sys.modules.get(module)
    return mod is not None and str(getattr(mod, "__file__", "")).endswith(".so")


class _SourceOnly:
    """Finds the compiled modules' ``.py`` files, ahead of their extensions (``MODERATION_NATIVE=0``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(name, source_of(name, self.root))


def guard(root: Path | None = None) -> list[str]:
    """Remove a build older than its sources, before any compiled module is imported; returns the
    stale modules it found. A build that cannot be removed (read-only install) is an ImportError:
    running code older than its source is never the answer. ``root``: the folder holding
    ``moderation/`` (tests point it elsewhere); by default this package's."""
    own = root is None
    root = PACKAGE_DIR.parent if root is None else root
    if own and os.environ.get("MODERATION_NATIVE", "1") == "0":
        if not any(isinstance(f, _SourceOnly) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourceOnly(root))
        return []
    stale = stale_modules(root)
    if not stale:
        return []
    if own and any(m in sys.modules for m in MODULES):
        raise ImportError(f"compiled modules are older than their source ({', '.join(stale)}): restart")
    try:
        remove_build(root)
    except OSError as exc:
        raise ImportError(
            f"compiled modules are older than their source ({', '.join(stale)}) and cannot be removed "
            f"({exc}): rebuild them with `make native` or delete them"
        ) from exc
    warnings.warn(
        f"removed the compiled rules modules built from older sources ({', '.join(stale)}); running from "
        "source until `make native` rebuilds them",
        RuntimeWarning,
        stacklevel=2,
    )
    return stale
