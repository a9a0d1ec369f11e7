"""The sample judges atml ships (package data in atml/models/judges/): a DigitClassifier per
dataset, trained once by atml's own recipe, so that the GAN's classes covered, KL and Fréchet
distance mean the same number on every machine (as FID's fixed Inception network does). Each
`NAME.pt` has a `NAME.json` beside it: how it was trained (command, data, recipe, seed), its
held-out accuracy and the file's SHA-256, checked on every load.

The MNIST judge shipped now learned from MNIST's test split (9,000 images; 1,000 held out score
it), the only MNIST on the machine that trained it; a GAN trains on the training split, so the
judge has seen none of its images. Retrain one (this writes both files; commit them with the
numbers they move):

    python -m atml.models.shipped_judges mnist --root DIR --split test
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from importlib.resources import files
from pathlib import Path

import torch

from atml.config import ClassifierConfig
from atml.data.mnist import ImageDataConfig
from atml.data.mnist_sets import load_train_heldout, to_signed_range
from atml.errors import DamagedFileError
from atml.models.mnist_classifier import DigitClassifier
from atml.models.sample_classifier import JudgedClassifier, train_classifier

RECIPE = ClassifierConfig(epochs=5)


def folder() -> Path:
    return Path(str(files("atml.models") / "judges"))


def load(dataset: str, device: torch.device) -> JudgedClassifier:
    """The shipped judge of `dataset`, its checksum checked (a DamagedFileError otherwise)."""
    weights, meta_file = folder() / f"{dataset}.pt", folder() / f"{dataset}.json"
    if not weights.is_file() or not meta_file.is_file():
        raise DamagedFileError(
            f"atml ships no {dataset} judge ({weights} missing); reinstall atml, or set "
            "eval.classifier.judge=train to train one here"
        )
    meta = json.loads(meta_file.read_text())
    data = weights.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != meta["sha256"]:
        raise DamagedFileError(
            f"atml's {dataset} judge {weights} has SHA-256 {found[:12]}…, not the {meta['sha256'][:12]}… "
            "it shipped with; reinstall atml"
        )
    model = DigitClassifier.loaded(
        torch.load(io.BytesIO(data), map_location=device, weights_only=True), device
    )
    return JudgedClassifier(model, meta["heldout_accuracy"], weights, True, f"shipped {dataset} judge", found)


def train(dataset: str, data: ImageDataConfig) -> dict:
    """Train `dataset`'s judge by RECIPE on `data`'s split and write it and its record into the
    package's judges folder."""
    drawn = load_train_heldout(dataset, data)
    judge = train_classifier(
        f"{dataset} judge",
        to_signed_range(drawn.train.images),
        drawn.train.labels,
        to_signed_range(drawn.heldout.images),
        drawn.heldout.labels,
        RECIPE,
    )
    buffer = io.BytesIO()
    torch.save(judge.model.state_dict(), buffer)
    meta = {
        "dataset": dataset,
        "trained_on": drawn.description,
        "heldout_images": len(drawn.heldout.labels),
        "heldout_accuracy": judge.heldout_accuracy,
        "recipe": RECIPE.model_dump(exclude={"judge"}),
        "command": "python -m atml.models.shipped_judges " + " ".join(sys.argv[1:]),
        "torch": torch.__version__,
        "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
    }
    folder().mkdir(exist_ok=True)
    (folder() / f"{dataset}.pt").write_bytes(buffer.getvalue())
    (folder() / f"{dataset}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist"])  # the GAN's; the VAE judges no samples
    parser.add_argument("--root", required=True, help="the data root (as data.root)")
    parser.add_argument(
        "--split", default="train", choices=["train", "test"], help="the split it learns from"
    )
    parser.add_argument("--heldout", type=int, default=1000, help="images of that split held out to score it")
    args = parser.parse_args(argv)
    data = ImageDataConfig(root=args.root, download=False, train_split=args.split, heldout=args.heldout)
    meta = train(args.dataset, data)
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
