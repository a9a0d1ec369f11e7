"""In-memory batching: whole datasets live on the device; batches are index gathers there.

This replaces DataLoader + per-item transforms for datasets that fit in memory (MNIST,
FashionMNIST, CIFAR): no worker processes, no per-image Python, no host-to-device copy per batch.
"""

from __future__ import annotations

import torch


class TensorBatches:
    """Iterate aligned tensors in shuffled (or fixed) batches; resumable through state_dict().

    `batches_per_epoch` fixes an epoch's length independently of the data's: passes are chained
    (each reshuffled) until that many batches are out, so a 100-image subset still gets epochs
    long enough to be worth evaluating and checkpointing."""

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatches needs tensors of equal length")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)  # the shuffle's
        self.batches_per_epoch = batches_per_epoch
        if self._per_pass() == 0:
            raise ValueError(f"{len(tensors[0])} items cannot fill one batch of {batch_size}")

    def _per_pass(self) -> int:
        n = len(self.tensors[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch or self._per_pass()

    def _one_pass(self):
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.tensors[0].device)
        for i in range(self._per_pass()):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[index] for t in self.tensors)

    def __iter__(self):
        produced = 0
        while produced < len(self):
            for batch in self._one_pass():
                yield batch
                produced += 1
                if produced == len(self):
                    return

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class StackedBatches:
    """Batches of N TensorBatches (one per seed, each with its own shuffle) stacked along a new
    leading dimension: one data pass serves every copy of a stacked model."""

    def __init__(self, members: list[TensorBatches]):
        if len({len(m) for m in members}) != 1:
            raise ValueError("StackedBatches needs members with the same number of batches")
        self.members = members

    def __len__(self) -> int:
        return len(self.members[0])

    def __iter__(self):
        for batches in zip(*self.members):
            yield tuple(torch.stack(tensors) for tensors in zip(*batches))
