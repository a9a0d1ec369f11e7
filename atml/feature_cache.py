"""Outputs of frozen models (pooled layer features, logits, embeddings), computed once in large
no-grad batches and kept on disk under a key of everything that determines them: model, weights
and their sha256, dataset, split, image indices, preprocessing, layers, flip. Parts and later runs
reuse them; every read is verified (its key and a checksum of its tensors) and a damaged or
partial entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from atml.cache import cache_dir, fit_to_cap
from atml.data.preprocess import Preprocess, to_model_input
from atml.errors import OutputWriteError
from atml.logs import Counter
from atml.runs import atomic_write_bytes, remove_stale_temps
from atml.runtime import autocast, load_tensors

log = logging.getLogger("atml")


class Outputs(dict[str, torch.Tensor]):
    """Named output tensors, and the seconds computing them took when they were computed (kept in
    the cache entry): what a frozen-backbone setting really costs, even when read from the cache."""

    compute_seconds: float = float("nan")

    @classmethod
    def timed(cls, tensors: dict[str, torch.Tensor], seconds: float) -> Outputs:
        outputs = cls(tensors)
        outputs.compute_seconds = seconds
        return outputs


def cache_root() -> Path:
    return cache_dir("features")


def fingerprint(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (image indices, say), for a cache key."""
    return hashlib.sha256(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def _canonical(determinants: dict) -> str:
    """The one text a set of determinants is keyed, stored and compared by."""
    return json.dumps(determinants, sort_keys=True, default=str)


def checksum(tensors: Outputs) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(str(tuple(tensors[name].shape)).encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_UNWRITABLE: set[Path] = set()  # cache folders a write failed in, this process: warned about once


@dataclass
class FeatureCache:
    root: Path
    enabled: bool = True

    def path(self, determinants: dict) -> Path:
        key = hashlib.sha256(_canonical(determinants).encode()).hexdigest()[:32]
        return self.root / f"{key}.pt"

    def get_or_compute(
        self, determinants: dict, compute: Callable[[], dict[str, torch.Tensor]], label: str
    ) -> Outputs:
        """The cached outputs for `determinants`, or compute() stored under them."""
        if not self.enabled:
            started = time.perf_counter()
            tensors = compute()
            return Outputs.timed(tensors, time.perf_counter() - started)
        path = self.path(determinants)
        if path.is_file():
            cached = self._read(path, determinants)
            if cached is not None:
                log.info(f"  feature cache hit: {label} ({path})")
                return cached
        elif self.root.is_dir():
            try:
                remove_stale_temps(self.root)
            except OSError:
                pass  # a read-only cache: the write below says so
        started = time.perf_counter()
        outputs = {k: v.detach().cpu().contiguous() for k, v in compute().items()}
        seconds = time.perf_counter() - started
        if self.root in _UNWRITABLE:
            return Outputs.timed(outputs, seconds)
        buffer = io.BytesIO()
        torch.save(
            {
                "determinants": _canonical(determinants),
                "tensors": outputs,
                "checksum": checksum(outputs),
                "compute_seconds": seconds,
            },
            buffer,
        )
        try:
            atomic_write_bytes(path, buffer.getvalue())
            fit_to_cap(keep=path)
        except OutputWriteError as exc:  # the cache only saves time: say so once and go on without it
            log.warning(f"  feature cache not written: {exc}; going on without it (folder: ATML_CACHE_DIR)")
            _UNWRITABLE.add(self.root)
        return Outputs.timed(outputs, seconds)

    @staticmethod
    def _read(path: Path, determinants: dict) -> Outputs | None:
        try:
            payload = load_tensors(path)
            tensors = payload["tensors"]
            same_key = payload["determinants"] == _canonical(determinants)
            if same_key and payload["checksum"] == checksum(tensors):
                return Outputs.timed(tensors, float(payload.get("compute_seconds", float("nan"))))
            reason = "its key or checksum does not match"
        except Exception as exc:  # truncated, foreign or garbled files alike
            reason = type(exc).__name__
        log.warning(f"  feature cache entry {path} is damaged ({reason}); computing it again")
        return None


def batched_outputs(
    forward: Callable[[torch.Tensor], Outputs],
    images: torch.Tensor,
    preprocess: Preprocess,
    device: torch.device,
    batch_size: int = 256,
    flip: bool = False,
    label: str = "features",
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """forward() over uint8 images [N, C, H, W] in large no-grad batches, preprocessed on the
    device; with precision "bf16" (atml.runtime.resolve_precision: CUDA, or a CPU with native
    bf16), bf16 autocast and channels_last inputs. Outputs come back as float32 on the CPU."""
    bf16 = precision == "bf16"
    chunks: dict[str, list[torch.Tensor]] = {}
    started, n = time.perf_counter(), len(images)
    counter = Counter(label, n, " images")
    with torch.no_grad(), autocast(device, precision):
        for start in range(0, n, batch_size):
            x = to_model_input(
                images[start : start + batch_size].to(device, non_blocking=True),
                preprocess,
                flip=flip,
                channels_last=bf16,
            )
            for name, value in forward(x).items():
                # a copy: a pooled view (tokens[:, 0]) would keep its whole batch of tokens
                # alive (OOM at 5,000 images)
                chunks.setdefault(name, []).append(value.float().cpu().clone())
            done = min(start + batch_size, n)
            counter.update(done, f" [{done / max(time.perf_counter() - started, 1e-9):.0f} images/s]")
    return {name: torch.cat(parts) for name, parts in chunks.items()}
