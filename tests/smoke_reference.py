"""The numbers `atml run all --smoke` gave on this project's machines, kept to prove that a
refactor changes no result. Floating-point results depend on the torch build, the CPU's bf16
support and the thread count, so the comparison runs only on a machine with the recorded
signature (CI's) and skips elsewhere, saying why.

Regenerate after an intended change of results:
    atml run all --smoke --out /tmp/smoke && python -m tests.smoke_reference /tmp/smoke
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


if __name__ == "__main__":
    REFERENCE.write_text(
        json.dumps({"signature": signature(), "numbers": smoke_numbers(Path(sys.argv[1]))}, indent=1)
    )
    print(f"wrote {REFERENCE}")
