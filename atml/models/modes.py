"""Train/eval mode handling that leaves a model as it found it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no gradients inside; afterwards every submodule is back in the mode it was
    in (a frozen BatchNorm backbone under a training head stays in eval mode)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for m, training in modes:
            m.training = training
