"""Compile the rules' hot modules with mypyc (``moderation/native.py`` lists them and says why).

    .venv/bin/python scripts/build_native.py          # build next to the sources, unless up to date
    .venv/bin/python scripts/build_native.py --force  # rebuild
    .venv/bin/python scripts/build_native.py --clean  # remove the build: the package runs from source

``make setup`` runs it. Without mypyc or a C compiler it says so and leaves the package running from
source (same answers, slower); ``--strict`` makes that an error instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.native import (  # noqa: E402
    GROUP,
    MODULES,
    compiled_files,
    remove_build,
    source_of,
    stale_modules,
    write_stamp,
)

# Run by the build's own Python in ROOT: mypyc's setuptools entry point, building in place.
_SETUP = """
import sys
from mypyc.build import mypycify
from setuptools import setup
# literals.py's ignores are for the full check (make test runs mypy); mypyc reads fewer stubs.
paths = ["--no-warn-unused-ignores", *sys.argv[1:]]
sys.argv = [sys.argv[0], "build_ext", "--inplace", "--build-temp", {temp!r}, "--build-lib", {temp!r}]
setup(name={group!r}, ext_modules=mypycify(paths, opt_level="3", group_name={group!r}))
"""


def build(strict: bool, force: bool) -> int:
    if not force and compiled_files(ROOT) and not stale_modules(ROOT):
        print("compiled modules are up to date")
        return 0
    remove_build(ROOT)
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return _skip("mypyc is not installed (it comes with mypy, in the dev extras)", strict)
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        return _skip("no C compiler (cc or gcc) on PATH", strict)
    paths = [str(source_of(m, ROOT).relative_to(ROOT)) for m in MODULES]
    with tempfile.TemporaryDirectory(prefix="moderation-native-") as temp:
        script = _SETUP.format(temp=temp, group=GROUP)
        proc = subprocess.run(
            [sys.executable, "-c", script, *paths],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "MYPY_CACHE_DIR": str(Path(temp) / "mypy-cache")},
        )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        remove_build(ROOT)
        return _skip("mypyc failed (output above)", strict)
    write_stamp(ROOT)
    print(f"compiled {len(MODULES)} modules: {', '.join(m.rsplit('.', 1)[1] for m in MODULES)}")
    return 0


def _skip(reason: str, strict: bool) -> int:
    print(f"native build skipped: {reason}; the rules run from source (slower)", file=sys.stderr)
    return 1 if strict else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the build and stop")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--strict", action="store_true", help="fail when the build cannot be made")
    args = parser.parse_args()
    if args.clean:
        remove_build(ROOT)
        return
    sys.exit(build(args.strict, args.force))


if __name__ == "__main__":
    main()
