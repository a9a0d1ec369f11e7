"""Every benchmark in turn, each the same work done the naive way and atml's way in one process,
gathered into one table with the machine it ran on: benchmarks/RESULTS.md (or --out). The README's
performance section is that table.

  python -m benchmarks                      # default sizes (~15 min on 2 CPU cores)
  python -m benchmarks --smoke --out /tmp/b.md   # tiny sizes: every benchmark runs; ratios meaningless
  python -m benchmarks --device cuda --out benchmarks/RESULTS-gpu.md

Data: MNIST's test split (the GAN; the full train split is not needed for a throughput), and
FashionMNIST's train and test splits, found as atml finds them (`atml data check`). Pretrained
weights are not needed: the ResNet, ViT and CLIP benchmarks use random weights of the same
architecture, which cost the same.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import traceback
from datetime import date
from pathlib import Path

import torch

from benchmarks import (
    clip_zeroshot,
    gan_throughput,
    resnet_frozen_head,
    seeds_stacked,
    study_parallel,
    vae_throughput,
    vit_probe_features,
)
from benchmarks.common import Comparison

# name → (entry point, its arguments at default size, the extra ones of --smoke)
BENCHMARKS = {
    "gan_throughput": (gan_throughput.main, ["--split", "test"], ["--batches", "24"]),
    "vae_throughput": (vae_throughput.main, [], ["--batches", "24"]),
    "seeds_stacked": (seeds_stacked.main, [], ["--smoke"]),
    "resnet_frozen_head": (
        resnet_frozen_head.main,
        [],
        [
            "--arch",
            "resnet18",
            "--train-images",
            "64",
            "--val-images",
            "32",
            "--resolution",
            "32",
            "--epochs",
            "1",
        ],
    ),
    "vit_probe_features": (
        vit_probe_features.main,
        [],
        ["--model", "vit_tiny_patch16_224", "--images", "16"],
    ),
    "clip_zeroshot": (clip_zeroshot.main, [], ["--images", "16"]),
    "study_parallel": (
        study_parallel.main,
        [],
        ["--cells", "2", "--seeds", "2", "--epochs", "1", "--images", "512"],
    ),
}
DEFAULT_OUT = Path(__file__).parent / "RESULTS.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> str:
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {where}"
    )


def commit() -> str:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
        return found.stdout.strip() + (" (with uncommitted changes)" if dirty else "") or "unknown"
    except OSError:
        return "unknown"


def table(results: dict[str, Comparison | str], device: str, smoke: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python -m benchmarks{' --smoke' if smoke else ''}"
        f"{f' --device {device}' if device != 'cpu' else ''}` on {date.today()}, commit {commit()}.",
        f"Machine: {machine(device)}.",
        "Each row is the same work done two ways in one process; ratio = naive seconds / atml's seconds.",
        *(["**--smoke: tiny sizes, the ratios mean nothing.**"] if smoke else []),
        "",
        "| benchmark | the work | naive way | atml's way | ratio | naive s | atml s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if isinstance(r, Comparison):
            lines.append(
                f"| {name} | {r.work} | {r.reference} | {r.ours} | **{r.ratio:.2f}x** | "
                f"{r.reference_s:.3g} | {r.ours_s:.3g} |"
            )
        else:
            lines.append(f"| {name} | NOT RUN: {r} | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks every benchmark runs")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--root", default="data", help="data root, as atml's data.root")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run only this (repeatable)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="the table's file [benchmarks/RESULTS.md]"
    )
    args = parser.parse_args(argv)
    results: dict[str, Comparison | str] = {}
    for name, (entry, default, smoke) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n== {name}", flush=True)
        try:
            results[name] = entry(
                [*default, *(smoke if args.smoke else []), "--device", args.device, "--root", args.root]
            )
        except Exception as exc:  # noqa: BLE001 — one benchmark's failure is a row, the others still run
            traceback.print_exc()
            results[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    text = table(results, args.device, args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"\n{text}\nwritten to {args.out}")
    return 1 if any(isinstance(r, str) for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
