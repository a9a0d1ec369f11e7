"""N copies of one network (one per seed) trained as one: each parameter stacked along a new
leading dimension, every layer run once for all copies on [N, batch, ...] inputs.

Exact mode (the default, and what a CPU run uses): each copy computes what its lone module
computes, bit for bit (tests/test_stacked.py). Linear layers run as batched matmuls, whose every
slice gets the numbers of the unbatched matmul at this project's sizes; ReLU, LeakyReLU, Flatten,
Unflatten and dropout are position-independent. A layer whose batched kernel can sum or round
otherwise than the lone one runs copy by copy, as the lone module runs it: convolutions (a grouped
convolution is no faster on CPU either), Tanh and Sigmoid (vectorised and scalar paths differ in the
last bit, and where each element falls depends on the tensor's size), a Linear with one output.
Batched mode (exact=False: the VAE on CUDA): every layer batched, convolutions grouped (one kernel
for all copies); a copy's numbers are then within rounding of its lone module's, not equal to them.
Dropout draws each copy's mask from that copy's own generator (a lone module's nn.Dropout draws
from torch's global stream: the tests put the two in one state). Each copy has an Adam of its own
(CopyAdams).
"""

from __future__ import annotations

import copy as copying
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

BATCHED = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Flatten, nn.Unflatten, nn.Dropout)
COPY_BY_COPY = (nn.Conv2d, nn.ConvTranspose2d, nn.Tanh, nn.Sigmoid)


class Stacked(nn.Module):
    """`copies` (modules of one architecture) as one module. `run(path, x)` runs the template's
    submodule at `path` (an nn.Sequential, or one layer) for every copy over x: [N, batch, ...]."""

    def __init__(self, copies: Sequence[nn.Module], exact: bool = True):
        super().__init__()
        # not a submodule: its own parameters are not trained (the stacked ones are); it serves
        # as the architecture, and as the lone module each copy's slices run through
        self.__dict__["template"] = copies[0]
        for name, layer in self.template.named_modules():
            if not list(layer.children()) and not isinstance(layer, BATCHED + COPY_BY_COPY):
                raise TypeError(f"Stacked cannot stack {name} ({type(layer).__name__})")
            if any(True for _ in layer.buffers(recurse=False)):
                raise TypeError(f"Stacked cannot stack {name} ({type(layer).__name__} has buffers)")
        self.names = [name for name, _ in self.template.named_parameters()]
        per_copy = [dict(c.named_parameters()) for c in copies]
        for name in self.names:  # registered in the lone module's order: optimiser states match
            stacked = torch.stack([p[name].detach() for p in per_copy])
            self.register_parameter(name.replace(".", "_"), nn.Parameter(stacked))
        self.copies, self.exact = len(copies), exact

    def param(self, name: str) -> nn.Parameter:
        return getattr(self, name.replace(".", "_"))

    def run(
        self, path: str, x: torch.Tensor, generators: Sequence[torch.Generator] | None = None
    ) -> torch.Tensor:
        """x: [N, batch, ...] → [N, batch, ...]; `generators` (one per copy) draw dropout masks in
        training mode. Between layers that run copy by copy the copies stay apart (a list)."""
        module = self.template.get_submodule(path)
        layers = module.named_children() if isinstance(module, nn.Sequential) else [("", module)]
        h: torch.Tensor | list[torch.Tensor] = x
        for name, layer in layers:
            h = self._layer(layer, f"{path}.{name}" if name else path, h, generators)
        return h if isinstance(h, torch.Tensor) else torch.stack(h)

    def _layer(self, layer: nn.Module, name: str, h, generators):
        params = {p: self.param(f"{name}.{p}") for p, _ in layer.named_parameters()}
        one_output = isinstance(layer, nn.Linear) and layer.out_features == 1
        if one_output or (self.exact and isinstance(layer, COPY_BY_COPY)):
            apart = h if isinstance(h, list) else h.unbind(0)  # unbind: one backward for all copies
            if not params:
                return [layer(x) for x in apart]
            per_copy = [dict(zip(params, slices)) for slices in zip(*(v.unbind(0) for v in params.values()))]
            return [functional_call(layer, p, (x,)) for p, x in zip(per_copy, apart)]
        if isinstance(layer, nn.Dropout):
            if not (self.training and layer.p > 0):
                return h
            keep = 1 - layer.p
            # as torch's CPU dropout: a Bernoulli(1 − p) mask divided by 1 − p
            masks = [
                torch.empty(x.shape, device=x.device).bernoulli_(keep, generator=g)
                for x, g in zip(h, generators)
            ]
            if isinstance(h, list):
                return [x * mask.div_(keep) for x, mask in zip(h, masks)]
            return h * torch.stack(masks).div_(keep)
        if isinstance(h, list):
            if not params:  # position-independent (ReLU, LeakyReLU) or reshaping: as the lone layer runs
                return [layer(x) for x in h]
            h = torch.stack(h)
        if isinstance(layer, nn.Linear):
            return torch.baddbmm(params["bias"].unsqueeze(1), h, params["weight"].transpose(1, 2))
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            return _grouped_convolution(layer, params, h)
        if isinstance(layer, nn.Flatten):
            end = layer.end_dim if layer.end_dim < 0 else layer.end_dim + 1
            return h.flatten(layer.start_dim + 1, end)
        if isinstance(layer, nn.Unflatten):
            return h.unflatten(layer.dim + 1 if layer.dim >= 0 else layer.dim, layer.unflattened_size)
        return layer(h)  # elementwise

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's parameters, named as its lone module's state_dict names them."""
        return {name: self.param(name)[k] for name in self.names}

    def load_copy_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in self.names:
                self.param(name)[k].copy_(state[name])

    def copy_forward(self, k: int, inputs: torch.Tensor) -> torch.Tensor:
        """Copy k alone, as its lone module (same forward, same kernels), in this module's mode."""
        self.template.train(self.training)
        return functional_call(self.template, self.copy_state(k), (inputs,))

    def copy(self, k: int) -> nn.Module:
        """Copy k as a live module of its own (its parameters are this module's slices)."""
        return _Copy(self, k)

    def lone(self, k: int) -> nn.Module:
        """Copy k as a lone module of the template's class, holding a copy of its parameters."""
        module = copying.deepcopy(self.template)
        module.load_state_dict({name: value.detach() for name, value in self.copy_state(k).items()})
        return module.train(self.training)


def _grouped_convolution(layer: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Every copy's convolution in one grouped convolution: copies become channel groups."""
    n, batch = x.shape[:2]
    weight, bias = params["weight"], params.get("bias")
    inputs = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])
    groups = n * layer.groups
    weight = weight.reshape(-1, *weight.shape[2:])
    bias = None if bias is None else bias.reshape(-1)
    if isinstance(layer, nn.Conv2d):
        out = F.conv2d(inputs, weight, bias, layer.stride, layer.padding, layer.dilation, groups)
    else:
        out = F.conv_transpose2d(
            inputs, weight, bias, layer.stride, layer.padding, layer.output_padding, groups, layer.dilation
        )
    return out.reshape(batch, n, -1, *out.shape[2:]).transpose(0, 1)


class StackedMLP(Stacked):
    """Stacked copies of a module whose layers are an nn.Sequential `net` (the GAN's G and D)."""

    def forward(self, x: torch.Tensor, generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        return self.run("net", x, generators)


class _Copy(nn.Module):
    def __init__(self, stacked: Stacked, k: int):
        super().__init__()
        self.stacked, self.k = stacked, k

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.stacked.copy_forward(self.k, inputs)


class CopyOf:
    """Copy k of a Stacked as the `Stateful` a checkpoint saves: the lone module's state_dict."""

    def __init__(self, stacked: Stacked, k: int):
        self.stacked, self.k = stacked, k

    def state_dict(self) -> dict:
        return {name: value.detach().clone() for name, value in self.stacked.copy_state(self.k).items()}

    def load_state_dict(self, state: dict) -> None:
        self.stacked.load_copy_state(self.k, state)


class CopyAdams:
    """Adam for every copy of a Stacked: one torch Adam per copy, over views of that copy's slices
    of the stacked parameters, stepped in turn. Each copy's update is then the lone Adam's kernel on
    tensors of the lone shapes: one fused Adam over the stacked tensors is not, where a slice's size
    is no multiple of the CPU's vector width (the VAE's 20 latent biases): its vectorised and scalar
    paths round the second moment otherwise, so a copy's would drift from its lone run's in the last
    bit. `optimizers[k]` is copy k's Adam, whose state_dict is a lone run's."""

    def __init__(self, stacked: Stacked, **adam):
        self.params = list(stacked.parameters())
        self.views = [[p.detach()[k] for p in self.params] for k in range(stacked.copies)]
        self.optimizers = [torch.optim.Adam(views, **adam) for views in self.views]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for k, (views, optimizer) in enumerate(zip(self.views, self.optimizers)):
            for p, view in zip(self.params, views):
                view.grad = None if p.grad is None else p.grad[k]
            optimizer.step()
