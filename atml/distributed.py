"""Data-parallel training under torchrun: `torchrun --nproc_per_node N -m atml run ...`.

Every rank runs the same parts with the same seed, so everything outside training (data, frozen
features, evaluation) agrees without communication. Training steps wrap the model in
DistributedDataParallel and give each rank its slice of every (global) batch, so N processes take
the steps one process would, N times faster. Only rank 0 writes the run folder.
Outside torchrun every function here is a no-op and `world_size()` is 1.
"""

from __future__ import annotations

import hashlib
import logging
import os

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger("atml")


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join the process group torchrun described (nccl on CUDA, gloo on CPU); on CUDA each rank
    takes the GPU of its local rank. Returns the device this rank trains on."""
    if not launched() or active():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(value: object) -> object:
    """Rank 0's value, on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: nn.Module) -> nn.Module:
    """The model DDP-wrapped when training across ranks (gradients averaged over them), else itself."""
    if not active():
        return model
    device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def shard(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """This rank's share of a global batch (every rank draws the same batches from the same seed)."""
    if not active():
        return batch
    return tuple(t[rank() :: world_size()] for t in batch)


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) everywhere: each rank updated its own from
    its own shard, and evaluation and checkpoints must not depend on the rank."""
    if active():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """A short hash of a state dict's names and bytes (a checkpoint's or a live model's)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def agreement(model: nn.Module) -> dict | None:
    """Every rank's checksum of the model's weights and buffers (None outside torchrun): the
    record that data-parallel training left the ranks with one model."""
    if not active():
        return None
    sums: list = [None] * world_size()
    dist.all_gather_object(sums, state_checksum(model.state_dict()))
    if len(set(sums)) != 1:
        log.warning(f"atml: WARNING: ranks ended with different weights: {sums}")
    return {
        "world_size": world_size(),
        "backend": dist.get_backend(),
        "state_checksum_per_rank": sums,
        "ranks_agree": len(set(sums)) == 1,
    }
