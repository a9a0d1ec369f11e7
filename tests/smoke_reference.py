"""The numbers `atml run all --smoke` gave on this project's machines, kept to prove that a
refactor changes no result. Floating-point results depend on the torch build, the CPU and the
thread count, so the reference holds one record per machine signature; the comparison runs against
the record of this machine's signature and skips where there is none, saying why.

Regenerate after an intended change of results (replaces this signature's record, keeps the others):
    atml run all --smoke --out /tmp/smoke && python -m tests.smoke_reference /tmp/smoke
A record of another machine then goes stale for the changed numbers: list them in its
`unrecorded` ({"keys_containing": [...], "why": ...}) after checking that nothing else changed
(a smoke run before and after the change, here), or drop the record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from atml.experiments import EXPERIMENTS
from atml.runtime import cpu_has_native_bf16
from atml.seed_summary import numeric_leaves

REFERENCE = Path(__file__).with_name("reference") / "smoke_metrics.json"
TIMINGS = ("time_s", "wall_s", "compute_seconds")


def signature() -> dict:
    return {
        "torch": torch.__version__,
        "native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads(),
    }


def smoke_numbers(outputs: Path) -> dict[str, dict[str, float]]:
    """Every number of each experiment's newest run under `outputs`, timings left out."""
    numbers = {}
    for name in EXPERIMENTS:
        metrics_file = sorted((Path(outputs) / name).glob("*/metrics.json"))[-1]
        leaves = numeric_leaves(json.loads(metrics_file.read_text()))
        numbers[name] = {k: v for k, v in leaves.items() if not k.endswith(TIMINGS)}
    return numbers


def record_for(this: dict) -> dict | None:
    records = json.loads(REFERENCE.read_text())["records"]
    return next((record for record in records if record["signature"] == this), None)


def unrecorded(record: dict, key: str) -> bool:
    return any(part in key for part in record.get("unrecorded", {}).get("keys_containing", []))


if __name__ == "__main__":
    this = signature()
    others = [r for r in json.loads(REFERENCE.read_text())["records"] if r["signature"] != this]
    record = {"signature": this, "numbers": smoke_numbers(Path(sys.argv[1]))}
    REFERENCE.write_text(json.dumps({"records": [*others, record]}, indent=1))
    print(f"wrote this machine's record into {REFERENCE} ({len(others)} other record(s) kept)")
