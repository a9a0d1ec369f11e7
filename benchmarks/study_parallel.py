"""A study's jobs one after another (`--launcher local`) vs two worker processes
(`--launcher processes --workers 2`), the same study of `atml run gan --part baseline` cells
(smoke settings but `--images` training images and `--epochs` epochs: jobs of ~10-20 s),
timed end to end through the CLI (each side its own study folder, in a scratch folder). Then the
GAN's N seeds three ways: stacked in one job (`--seeds N`), a job per seed on two workers, and a
job per seed one after another (a `--sweep seed=[...]` of one-seed cells).

  python -m benchmarks.study_parallel              # MNIST's test split, as atml finds it
  python -m benchmarks.study_parallel --cells 4 --seeds 3 --root data
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Comparison

LEARNING_RATES = ("0.0001", "0.0002", "0.0004", "0.0008", "0.0016", "0.0032", "0.0064", "0.0128")


def study_seconds(args: list[str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "atml", *args, "--out", str(out)], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default=None, help="data root (default: where atml finds MNIST)")
    parser.add_argument(
        "--device", default="cpu", help="cpu | cuda (workers share it where one GPU is visible)"
    )
    parser.add_argument("--cells", type=int, default=4, help="cells of the learning-rate sweep (≤ 8)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the three-ways comparison")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--images", type=int, default=8000, help="training images of MNIST's test split")
    args = parser.parse_args(argv)
    common = ["run", "gan", "--smoke", "--part", "baseline", "--set", f"train.epochs={args.epochs}"]
    common += ["--set", f"data.train_subset={args.images}", "--device", args.device]
    common += ["--set", f"data.root={args.root}"] if args.root else []
    sweep = ["--sweep", f"train.lr_d=[{','.join(LEARNING_RATES[: args.cells])}]"]
    seeds = ["--sweep", f"seed=[{','.join(map(str, range(args.seeds)))}]"]
    with tempfile.TemporaryDirectory(prefix="atml-bench-") as scratch:
        root = Path(scratch)
        local = study_seconds([*common, *sweep], root / "local")
        workers = study_seconds(
            [*common, *sweep, "--launcher", "processes", "--workers", "2"], root / "processes"
        )
        print(f"{args.cells} cells: local {local:.1f} s, 2 worker processes {workers:.1f} s", flush=True)
        three = {
            "stacked in one job": study_seconds([*common, "--seeds", str(args.seeds)], root / "stacked"),
            "a job per seed, 2 workers": study_seconds(
                [*common, *seeds, "--launcher", "processes", "--workers", "2"], root / "per-seed-processes"
            ),
            "a job per seed, in turn": study_seconds([*common, *seeds], root / "per-seed-local"),
        }
    print(f"\nThe GAN's {args.seeds} seeds (baseline part, {args.images} images, {args.epochs} epochs):")
    for way, seconds in three.items():
        print(f"  {way:28s} {seconds:6.1f} s")
    result = Comparison(
        "study_parallel",
        f"a study of {args.cells} GAN cells (baseline part, {args.images} images, {args.epochs} epochs)",
        "--launcher local (one job after another)",
        "--launcher processes --workers 2",
        local,
        workers,
    )
    result.print_ratio()
    return result


if __name__ == "__main__":
    main()
