"""Benchmark the bulk audit: throughput, memory as the catalogue grows, kill-and-resume, Ray vs local.

The catalogue is generated from real text: Taobao titles and shopping reviews from ../shared/corpora
(read by path at run time and written only to a scratch folder: those texts have no licence for the
repository), cut into 300-character descriptions, with a share of listings given an inserted claim
(superlatives, disease claims, guaranteed returns, fake sales), and bad rows at a fixed rate.

    .venv/bin/python scripts/bench_audit.py                         # everything, default sizes
    .venv/bin/python scripts/bench_audit.py --sizes 100000,1000000 --skip-ray
    .venv/bin/python scripts/bench_audit.py --throughput 20000 --sizes 20000 --resume-size 5000   # quick

Every run is a real ``moderation audit`` subprocess (``python -m moderation.audit.cli``) on ``--workers``
processes, so the figures include start-up, reading, checking, writing parts and the report.
Memory is the peak summed RSS of the audit's whole process tree, sampled from /proc every 0.2 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"

CATEGORIES = ["general"] * 6 + [
    "food",
    "cosmetics",
    "apparel",
    "baby",
    "health_food",
    "education",
    "finance",
    "medical_device",
    "alcohol",
    "agriculture",
]
#: Claims inserted into a share of listings (title or description), as sellers write them.
CLAIMS = [
    "全网最低价",
    "销量第一",
    "国家级工艺",
    "最好用的",
    "顶级品质",
    "史无前例",
    "NO.1",
    "治疗便秘",
    "根治失眠",
    "抗癌防癌",
    "七天祛斑",
    "永不反弹",
    "稳赚不赔",
    "零风险高回报",
    "保过班",
    "不过全额退款",
    "月销10万+",
    "好评返现",
    "原价999现价99",
    "专家推荐",
    "比药还管用",
    "无任何副作用",
    "增强免疫力",
    "最后一天",
    "绝无仅有",
    "zuì 佳",
    "第①名",
]
BAD_ROWS = [
    '{"id": "bad-json", "title": "缺右括号"',
    '{"title": "没有编号的商品"}',
    '{"id": "bad-cat", "title": "猫粮", "category": "pets"}',
    '{"id": "bad-empty", "title": "", "description": ""}',
]


def _titles() -> list[str]:
    return [
        t.strip()
        for t in (CORPORA / "taobao_titles.txt").read_text(encoding="utf-8").splitlines()
        if t.strip()
    ]


def _reviews() -> list[str]:
    out: list[str] = []
    with open(CORPORA / "online_shopping_10_cats.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            text = (row.get("review") or "").strip()
            if text:
                out.append(text)
    with open(CORPORA / "product_reviews_eprstmt.jsonl", encoding="utf-8") as fh:
        out.extend(json.loads(line)["sentence"] for line in fh if line.strip())
    return out


def generate(path: Path, n: int, seed: int = 7, claim_share: float = 0.15, bad_every: int = 5000) -> None:
    """Write ``n`` listings as JSON Lines, streaming (memory does not grow with ``n``)."""
    rng = random.Random(seed)
    titles, reviews = _titles(), _reviews()
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                out.write(BAD_ROWS[(i // bad_every) % len(BAD_ROWS)] + "\n")
                continue
            title = rng.choice(titles)
            desc = ""
            while len(desc) < 300:
                desc += rng.choice(reviews)
            desc = desc[:300]
            if rng.random() < claim_share:
                claim = rng.choice(CLAIMS)
                if rng.random() < 0.5:
                    title = f"{claim} {title}"
                else:
                    pos = rng.randrange(0, 280)
                    desc = desc[:pos] + claim + desc[pos:]
            row = {
                "id": f"sku-{i:08d}",
                "title": title,
                "description": desc,
                "category": rng.choice(CATEGORIES),
                "seller_id": f"s-{rng.randrange(5000):05d}",
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


# -- running and measuring -----------------------------------------------------------------------------


def _tree_sample(root: int) -> tuple[int, int, dict[int, float]]:
    """(summed RSS of ``root`` and its descendants, largest single RSS) in bytes, and the CPU seconds
    (user + system) each of them has used so far, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/statm") as fh:
                resident = int(fh.read().split()[1]) * page
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        rss[pid] = resident
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    members = [rss.get(p, 0) for p in tree]
    return sum(members), max(members, default=0), {p: cpu.get(p, 0.0) for p in tree}


def audit_cmd(inp: Path, out: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "moderation.audit.cli",
        str(inp),
        "--out",
        str(out),
        "--workers",
        str(args.workers),
        "--batch-size",
        str(args.batch_size),
        "--quiet",
        *extra,
    ]
    return cmd


def run(cmd: list[str], kill_after_batches: int | None = None, out: Path | None = None) -> dict[str, Any]:
    """Run an audit subprocess, sampling its memory; optionally SIGKILL it after N committed batches."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    peak_total = peak_one = 0
    cpu: dict[int, float] = {}
    killed = False
    while proc.poll() is None:
        total, one, used = _tree_sample(proc.pid)
        peak_total, peak_one = max(peak_total, total), max(peak_one, one)
        for pid, sec in used.items():
            cpu[pid] = max(cpu.get(pid, 0.0), sec)
        if kill_after_batches is not None and out is not None and _done_batches(out) >= kill_after_batches:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.2)
    _, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"audit failed ({proc.returncode}): {stderr[-2000:]}")
    # CPU time of the tree as last sampled (a worker's final 0.2 s may be missed: a slight overestimate of
    # listings per CPU-second at most)
    return {
        "seconds": seconds,
        "peak_rss_total": peak_total,
        "peak_rss_process": peak_one,
        "stderr": stderr,
        "killed": killed,
        "cpu_seconds": sum(cpu.values()),
    }


def _done_batches(out: Path) -> int:
    try:
        with sqlite3.connect(out / "manifest.sqlite", timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    except sqlite3.Error:
        return 0


def _steady_rate(out: Path) -> tuple[float, float]:
    """(listings/s over the whole run including worker start-up, listings/s once the workers were up),
    from the manifest's per-batch completion times."""
    with sqlite3.connect(out / "manifest.sqlite") as db:
        rows = db.execute("SELECT n_listings, done_at FROM batches ORDER BY done_at").fetchall()
        started = json.loads(db.execute("SELECT value FROM meta WHERE key = 'started_at'").fetchone()[0])
    total = sum(n for n, _ in rows)
    whole = total / (rows[-1][1] - started)
    steady = (total - rows[0][0]) / (rows[-1][1] - rows[0][1]) if len(rows) > 1 else whole
    return whole, steady


def tables_equal(a: Path, b: Path, names: tuple[str, ...] = ("listings", "findings")) -> bool:
    """Whether two audits hold the same rows (order-insensitive)."""
    sys.path.insert(0, str(REPO))
    from moderation.audit.writers import read_table

    for name in names:
        ta, tb = read_table(a, name), read_table(b, name)
        keys = [("source", "ascending"), ("line", "ascending")]
        if name == "findings":
            keys += [("field", "ascending"), ("start", "ascending"), ("rule", "ascending")]
        if not ta.sort_by(keys).equals(tb.sort_by(keys)):
            return False
    return True


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument(
        "--throughput", type=int, default=200_000, help="Listings for the rules-only throughput run."
    )
    ap.add_argument(
        "--classifier-size", type=int, default=20_000, help="Listings for the rules + classifier run."
    )
    ap.add_argument(
        "--sizes", default="100000,1000000", help="Catalogue sizes for the memory curve (comma list)."
    )
    ap.add_argument("--resume-size", type=int, default=50_000)
    ap.add_argument("--ray-size", type=int, default=10_000)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-resume", action="store_true")
    ap.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    ap.add_argument("--scratch", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = ap.parse_args()

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    scratch.mkdir(parents=True, exist_ok=True)
    # A private copy of the rules: a resumed run refuses a checkpoint made with other rules, and rules/ may
    # be edited while a long benchmark runs.
    frozen = scratch / "rules"
    if not frozen.exists():
        shutil.copytree(Path(os.environ.get("MODERATION_RULES_DIR", REPO / "rules")), frozen)
    os.environ["MODERATION_RULES_DIR"] = str(frozen)
    figures: dict[str, Any] = {
        "workers": args.workers,
        "batch_size": args.batch_size,
        "cores": os.cpu_count(),
    }
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | {args.throughput})
        biggest = max([*sizes, args.resume_size, args.ray_size, args.classifier_size])
        cat = scratch / "catalogue.jsonl"
        t = time.perf_counter()
        if cat.exists() and _count_lines(cat) >= biggest:
            print(f"reusing {cat}", flush=True)  # the same seed gives the same catalogue
        else:
            generate(cat, biggest)
            print(
                f"generated {biggest:,} listings in {time.perf_counter() - t:.0f}s "
                f"({cat.stat().st_size / 1e9:.2f} GB)",
                flush=True,
            )

        def prefix(n: int) -> Path:
            """The first n listings, as their own file (same listings across sizes)."""
            p = scratch / f"catalogue-{n}.jsonl"
            if not p.exists():
                with open(cat, "rb") as src, open(p, "wb") as dst:
                    for i, line in enumerate(src):
                        if i >= n:
                            break
                        dst.write(line)
            return p

        # 1. rules-only throughput and 2. memory as the catalogue grows
        memory = []
        for n in sizes:
            out = scratch / f"out-rules-{n}"
            shutil.rmtree(out, ignore_errors=True)
            r = run(audit_cmd(prefix(n), out, args, "--no-classifier"))
            _, steady = _steady_rate(out)
            row = {
                "listings": n,
                "seconds": round(r["seconds"], 1),
                "listings_per_s": round(n / r["seconds"]),
                "listings_per_s_after_startup": round(steady),
                "cpu_seconds": round(r["cpu_seconds"], 1),
                # what the run costs per core: with other jobs on the machine, wall-clock rates
                # understate what --workers cores deliver; this does not depend on them
                "listings_per_cpu_second": round(n / r["cpu_seconds"]) if r["cpu_seconds"] else None,
                "peak_rss_total_mb": round(r["peak_rss_total"] / 2**20),
                "peak_rss_largest_process_mb": round(r["peak_rss_process"] / 2**20),
            }
            memory.append(row)
            print(
                f"rules only, {n:>9,} listings: {row['seconds']:>7}s  {row['listings_per_s']:>6,}/s end to end, "
                f"{row['listings_per_s_after_startup']:>6,}/s after start-up, {row['listings_per_cpu_second']:,} per CPU-second; "
                f"peak RSS {row['peak_rss_total_mb']} MB "
                f"(tree), {row['peak_rss_largest_process_mb']} MB (largest process)",
                flush=True,
            )
            if n == args.throughput:
                figures["rules_only"] = row
        figures["memory"] = memory

        # 3. rules + classifier, when the model exists
        model_dir = REPO / "models" / "risk-classifier"
        if (model_dir / "config.json").exists():
            n = args.classifier_size
            out = scratch / "out-classifier"
            shutil.rmtree(out, ignore_errors=True)
            r = run(audit_cmd(prefix(n), out, args))
            _, steady = _steady_rate(out)
            figures["rules_and_classifier"] = {
                "listings": n,
                "seconds": round(r["seconds"], 1),
                "listings_per_s": round(n / r["seconds"]),
                "listings_per_s_after_startup": round(steady),
                "peak_rss_total_mb": round(r["peak_rss_total"] / 2**20),
                "listings_per_cpu_second": round(n / r["cpu_seconds"]) if r["cpu_seconds"] else None,
            }
            print(f"rules + classifier, {n:,} listings: {figures['rules_and_classifier']}", flush=True)
        else:
            figures["rules_and_classifier"] = f"skipped: no model at {model_dir}"
            print(figures["rules_and_classifier"], flush=True)

        # 4. kill and resume
        if not args.skip_resume:
            n = args.resume_size
            inp = prefix(n)
            ref, killed = scratch / "out-resume-ref", scratch / "out-resume-killed"
            for d in (ref, killed):
                shutil.rmtree(d, ignore_errors=True)
            run(audit_cmd(inp, ref, args, "--no-classifier", "--jsonl"))
            n_batches = -(-n // args.batch_size)
            k = run(
                audit_cmd(inp, killed, args, "--no-classifier", "--jsonl"),
                kill_after_batches=max(1, n_batches // 2),
                out=killed,
            )
            at = _done_batches(killed)
            run(audit_cmd(inp, killed, args, "--no-classifier", "--jsonl"))
            same = (
                tables_equal(ref, killed)
                and (ref / "results.jsonl").read_bytes() == (killed / "results.jsonl").read_bytes()
            )
            figures["kill_and_resume"] = {
                "listings": n,
                "killed": k["killed"],
                "batches_done_at_kill": at,
                "batches": n_batches,
                "identical_to_uninterrupted": same,
            }
            print(
                f"kill and resume, {n:,} listings: SIGKILL after {at}/{n_batches} batches, rerun -> "
                f"{'identical' if same else 'DIFFERENT'} to the uninterrupted run",
                flush=True,
            )

        # 5. Ray vs local
        if not args.skip_ray:
            n = args.ray_size
            inp = prefix(n)
            loc, ray_out = scratch / "out-ray-local", scratch / "out-ray"
            for d in (loc, ray_out):
                shutil.rmtree(d, ignore_errors=True)
            a = run(audit_cmd(inp, loc, args, "--no-classifier"))
            b = run(audit_cmd(inp, ray_out, args, "--no-classifier", "--engine", "ray"))
            same = tables_equal(loc, ray_out)
            figures["ray_vs_local"] = {
                "listings": n,
                "identical": same,
                "local_seconds": round(a["seconds"], 1),
                "ray_seconds": round(b["seconds"], 1),
                "ray_peak_rss_total_mb": round(b["peak_rss_total"] / 2**20),
            }
            print(
                f"ray vs local, {n:,} listings: {'identical' if same else 'DIFFERENT'} findings; local "
                f"{a['seconds']:.0f}s, ray {b['seconds']:.0f}s (incl. Ray start-up)",
                flush=True,
            )
        print(json.dumps(figures, ensure_ascii=False, indent=1))
    finally:
        if not args.keep and args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
