"""The classifier that judges generated samples: atml's shipped one (atml.models.shipped_judges,
the default: the same numbers on every machine) or one trained here (`eval.classifier.judge:
train`), trained once per training set and cached. Either way its held-out accuracy is recorded
so its verdicts can be weighed."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from atml.cache import cache_dir, fit_to_cap
from atml.config import ClassifierConfig
from atml.data.batching import TensorBatches
from atml.errors import OutputWriteError
from atml.models.mnist_classifier import DigitClassifier
from atml.models.modes import evaluating
from atml.runs import atomic_write_bytes, remove_stale_temps
from atml.runtime import load_tensors
from atml.seeding import Seeds
from atml.training import fit

log = logging.getLogger("atml")


@dataclass
class JudgedClassifier:
    model: DigitClassifier
    heldout_accuracy: float
    cache_file: Path
    from_cache: bool
    description: str = "trained here"  # which judge: metrics.json records it beside its numbers
    sha256: str | None = None  # of the shipped judge's file

    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and penultimate features of images in [-1, 1], shape [N, 1, 28, 28]."""
        labels, features = [], []
        with evaluating(self.model):
            for chunk in images.split(batch_size):
                f = self.model.features(chunk)
                features.append(f)
                labels.append(self.model.head(f).argmax(1))
        return torch.cat(labels), torch.cat(features)


def classifier_dir() -> Path:
    return cache_dir("classifiers")


def fingerprint(images: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig) -> str:
    digest = hashlib.sha256()
    digest.update(images.cpu().numpy().tobytes())
    digest.update(labels.cpu().numpy().tobytes())
    digest.update(cfg.model_dump_json().encode())
    digest.update(
        str(Seeds(cfg.seed).value("init")).encode()
    )  # the recipe's streams, as atml.seeding derives them
    return digest.hexdigest()[:16]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with evaluating(model):
        correct = sum(
            (model(x).argmax(1) == y).sum().item() for x, y in zip(images.split(1000), labels.split(1000))
        )
    return correct / len(labels)


def get_classifier(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    heldout_x: torch.Tensor,
    heldout_y: torch.Tensor,
    cfg: ClassifierConfig,
    n_classes: int = 10,
) -> JudgedClassifier:
    """Load the cached classifier for this exact training set, or train and cache one.
    Images are float [N, 1, 28, 28] in [-1, 1] on the device they should run on."""
    path = classifier_dir() / f"{name}-{fingerprint(train_x, train_y, cfg)}.pt"
    if path.parent.is_dir():
        try:
            remove_stale_temps(path.parent)
        except OSError:  # a read-only cache: nothing to tidy, nothing to write
            pass
    if path.is_file():
        try:
            saved = load_tensors(path, train_x.device)
            model = DigitClassifier.loaded(saved["state"], train_x.device, n_classes)
            return JudgedClassifier(model, float(saved["heldout_accuracy"]), path, True)
        except Exception as exc:  # a damaged or foreign file: the cache is rebuilt, not trusted
            log.info(f"  sample classifier cache {path} is damaged ({type(exc).__name__}); training it again")
    judge = train_classifier(name, train_x, train_y, heldout_x, heldout_y, cfg, n_classes)
    model, acc = judge.model, judge.heldout_accuracy
    buffer = io.BytesIO()
    torch.save({"state": model.state_dict(), "heldout_accuracy": acc}, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
        fit_to_cap(keep=path)
        log.info(f"  sample classifier: held-out accuracy {acc:.4f}, cached at {path}")
    except OutputWriteError as exc:  # a cache is an optimisation: the next run trains it again
        log.warning(f"  sample classifier not cached ({exc}); going on without it (folder: ATML_CACHE_DIR)")
    return JudgedClassifier(model, acc, path, False)


def train_classifier(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    heldout_x: torch.Tensor,
    heldout_y: torch.Tensor,
    cfg: ClassifierConfig,
    n_classes: int = 10,
) -> JudgedClassifier:
    """A DigitClassifier trained by atml's recipe `cfg` and scored on the held-out images (not
    cached: get_classifier caches, shipped_judges ships)."""
    seeds = Seeds(cfg.seed)  # the recipe's: the judge does not depend on the run's seed
    with seeds.initialising():
        model = DigitClassifier(n_classes).to(train_x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(batch):
        x, y = batch
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    model.train()
    fit(
        step,
        TensorBatches(train_x, train_y, batch_size=cfg.batch_size, seed=seeds.value("batches")),
        cfg.epochs,
        label=f"{name} sample classifier",
        log_every=100,
    )
    return JudgedClassifier(model, accuracy(model, heldout_x, heldout_y), Path(), False)
