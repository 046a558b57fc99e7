"""The Ray engine: the same per-batch function as Ray Data ``map_batches`` on actors holding the model.

The dataset is the list of planned batches (a few hundred bytes each); each actor builds its Checker
once (rules, jieba, the classifier) and turns one planned batch into its three tables, which come back
to the driver as Arrow IPC bytes. The driver writes the parts and commits the manifest, so the output
folder only has to exist where the driver runs; the *input* must be readable by the workers (a shared
file system on a multi-node cluster, or the local disk on one machine).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from moderation.audit.batch import BatchOutput, run_batch
from moderation.audit.local import BatchDone, CheckerSettings
from moderation.audit.readers import BatchSpec
from moderation.audit.writers import write_parts


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class CheckActor:
    """A Ray Data callable class: constructed once per actor, then called per batch of planned batches."""

    def __init__(self, settings: CheckerSettings, jsonl: bool) -> None:
        self.checker = settings.build()
        self.settings = settings
        self.jsonl = jsonl

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            k: [] for k in ("spec", "listings", "findings", "images", "jsonl", "seconds")
        }
        n = len(batch["batch_id"])
        for i in range(n):
            spec = BatchSpec.from_dict({k: _scalar(batch[k][i]) for k in batch})
            t0 = time.perf_counter()
            output = run_batch(
                self.checker, spec, jsonl=self.jsonl, classifier_batch=self.settings.classifier_batch
            )
            out["spec"].append(spec.to_dict())
            out["listings"].append(_to_ipc(output.listings))
            out["findings"].append(_to_ipc(output.findings))
            out["images"].append(_to_ipc(output.images))
            out["jsonl"].append("\n".join(output.jsonl) if output.jsonl is not None else None)
            out["seconds"].append(time.perf_counter() - t0)
        return out


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def run_ray(
    specs: list[BatchSpec],
    out_dir: Path,
    settings: CheckerSettings,
    *,
    workers: int,
    jsonl: bool,
    address: str | None = None,
) -> Iterator[BatchDone]:
    """Yield each batch as the driver has written it. Starts a local Ray instance unless one is running
    (or ``address`` names a cluster)."""
    import ray

    if not specs:
        return
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours is on stderr already
    ctx.print_on_execution_start = False
    ds = ray.data.from_items([s.to_dict() for s in specs], override_num_blocks=min(len(specs), 200))
    checked = ds.map_batches(
        CheckActor,
        fn_constructor_kwargs={"settings": settings, "jsonl": jsonl},
        batch_size=1,
        batch_format="numpy",
        concurrency=max(1, workers),
        num_cpus=1,
    )
    for row in checked.iter_rows():
        spec = BatchSpec.from_dict(row["spec"])
        text = row["jsonl"]
        output = BatchOutput(
            batch_id=spec.batch_id,
            listings=_from_ipc(row["listings"]),
            findings=_from_ipc(row["findings"]),
            images=_from_ipc(row["images"]),
            jsonl=(text.split("\n") if text else []) if jsonl else None,
        )
        write_parts(out_dir, output)
        yield BatchDone(
            spec, output.n_listings, output.findings.num_rows, output.n_errors, float(row["seconds"])
        )
