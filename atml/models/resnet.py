"""Surgery on torchvision ResNets for the transfer-learning experiment: switching residual
shortcuts off, replacing the classifier head, freezing policies and pooled layer features.
Nothing here edits torchvision: blocks get a different forward, state-dict keys stay the same."""

from __future__ import annotations

import types
from typing import Literal

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

Policy = Literal["frozen", "last-block", "full"]
POLICIES: tuple[str, ...] = ("frozen", "last-block", "full")


def _forward_without_shortcut(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The block's own forward minus `out += identity` (and so minus its downsample branch)."""
    out = self.relu(self.bn1(self.conv1(x)))
    if isinstance(self, Bottleneck):
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
    else:
        out = self.bn2(self.conv2(out))
    return self.relu(out)


def residual_blocks(model: ResNet) -> dict[str, nn.Module]:
    """Every residual block by its module name: 'layer1.0' … 'layer4.2' (0-based, as torchvision
    names them)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))}


def remove_shortcuts(model: ResNet, names: list[str]) -> None:
    """Switch the identity/downsample shortcut off in the named blocks (e.g. 'layer2.1')."""
    blocks = residual_blocks(model)
    unknown = [n for n in names if n not in blocks]
    if unknown:
        raise ValueError(f"no residual block {unknown[0]!r}; blocks are {', '.join(blocks)}")
    for name in names:
        blocks[name].forward = types.MethodType(_forward_without_shortcut, blocks[name])


def replace_head(model: ResNet, n_classes: int) -> nn.Linear:
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    return model.fc


def apply_policy(model: ResNet, policy: Policy) -> int:
    """Make exactly the policy's parameters trainable; returns their count. `frozen`: the head
    only; `last-block`: layer4 and the head; `full`: everything."""
    trainable = {"frozen": ("fc.",), "last-block": ("layer4.", "fc."), "full": ("",)}[policy]
    count = 0
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
        count += p.numel() if p.requires_grad else 0
    return count


class PooledFeatures:
    """Globally average-pooled outputs of named modules, captured by forward hooks."""

    def __init__(self, model: nn.Module, layers: list[str]):
        modules = dict(model.named_modules())
        missing = [layer for layer in layers if layer not in modules]
        if missing:
            raise ValueError(f"no module {missing[0]!r} to take features from; e.g. layer1, layer3, layer4")
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [modules[layer].register_forward_hook(self._keep(layer)) for layer in layers]

    def _keep(self, layer: str):
        def hook(module, inputs, output):
            self.outputs[layer] = output.float().mean(dim=(2, 3)) if output.ndim == 4 else output.float()

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
