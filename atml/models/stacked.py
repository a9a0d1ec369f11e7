"""N copies of one MLP (one per seed) trained as one: each parameter stacked along a new leading
dimension, every layer run once for all copies ([N, batch, features] through batched matmuls).

Each copy computes what it would compute alone, bit for bit on CPU (tests/test_stacked.py):
a batched matmul gives every slice the numbers of the unbatched one, except a layer with one
output, whose batched kernel differs from the one a lone copy uses, so it runs copy by copy (it is
the cheapest layer). Dropout draws each copy's mask from that copy's own generator, as the lone
copy drew it from the global one. Adam, elementwise, updates every slice as it would alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def fork_global_generator(device: torch.device) -> torch.Generator:
    """A generator in the state the global one is in now: draws from it are the draws the global
    generator would have made next."""
    g = torch.Generator(device=device)
    g.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return g


class StackedMLP(nn.Module):
    """`copies` (modules of one architecture holding an nn.Sequential `net` of Linear, Flatten,
    Dropout and elementwise activations) as one module over [N, batch, ...] inputs."""

    def __init__(self, copies: Sequence[nn.Module]):
        super().__init__()
        # not a submodule: its own parameters are not trained (the stacked ones are); it serves
        # as the architecture, and as the lone module each copy's slices run through
        self.__dict__["template"] = copies[0]
        for layer in self.template.net:
            if isinstance(layer, nn.Module) and any(True for _ in layer.buffers()):
                raise TypeError(f"StackedMLP cannot stack {type(layer).__name__} (it has buffers)")
        self.names = [name for name, _ in self.template.net.named_parameters()]
        per_copy = [dict(c.net.named_parameters()) for c in copies]
        for name in self.names:  # registered in the lone module's order: optimiser states match
            stacked = torch.stack([p[name].detach() for p in per_copy])
            self.register_parameter(name.replace(".", "_"), nn.Parameter(stacked))
        self.copies = len(copies)

    def param(self, name: str) -> nn.Parameter:
        return getattr(self, name.replace(".", "_"))

    def forward(self, x: torch.Tensor, generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """x: [N, batch, ...] → [N, batch, ...]; `generators` (one per copy) draw dropout masks in
        training mode."""
        for i, layer in enumerate(self.template.net):
            if isinstance(layer, nn.Linear):
                w, b = self.param(f"{i}.weight"), self.param(f"{i}.bias")
                if w.shape[1] == 1:
                    x = torch.stack([F.linear(x[k], w[k], b[k]) for k in range(self.copies)])
                else:
                    x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            elif isinstance(layer, nn.Flatten):
                x = x.flatten(2)
            elif isinstance(layer, nn.Dropout):
                if self.training and layer.p > 0:
                    keep = 1 - layer.p
                    # as torch's CPU dropout: a Bernoulli(1 − p) mask divided by 1 − p
                    noise = torch.stack(
                        [
                            torch.empty(x.shape[1:], device=x.device).bernoulli_(keep, generator=g)
                            for g in generators
                        ]
                    )
                    x = x * noise.div_(keep)
            else:
                x = layer(x)
        return x

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy k's parameters, named as its lone module's state_dict names them."""
        return {f"net.{name}": self.param(name)[k] for name in self.names}

    def load_copy_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in self.names:
                self.param(name)[k].copy_(state[f"net.{name}"])

    def copy_forward(self, k: int, inputs: torch.Tensor) -> torch.Tensor:
        """Copy k alone, as its lone module (same forward, same kernels), in this module's mode."""
        self.template.train(self.training)
        return functional_call(self.template, self.copy_state(k), (inputs,))

    def copy(self, k: int) -> nn.Module:
        """Copy k as a module of its own (its parameters are this module's slices)."""
        return _Copy(self, k)


class _Copy(nn.Module):
    def __init__(self, stacked: StackedMLP, k: int):
        super().__init__()
        self.stacked, self.k = stacked, k

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.stacked.copy_forward(self.k, inputs)


class CopyOf:
    """Copy k of a StackedMLP as the `Stateful` a checkpoint saves: the lone module's state_dict."""

    def __init__(self, stacked: StackedMLP, k: int):
        self.stacked, self.k = stacked, k

    def state_dict(self) -> dict:
        return {name: value.detach().clone() for name, value in self.stacked.copy_state(self.k).items()}

    def load_state_dict(self, state: dict) -> None:
        self.stacked.load_copy_state(self.k, state)


class AdamCopyOf:
    """Copy k's slice of an Adam over stacked parameters, as the `Stateful` a checkpoint saves: the
    state_dict an Adam over the lone copy's parameters would have."""

    def __init__(self, optimizer: torch.optim.Optimizer, k: int):
        self.optimizer, self.k = optimizer, k

    def state_dict(self) -> dict:
        full = self.optimizer.state_dict()
        state = {
            i: {key: (v if key == "step" else v[self.k].clone()) for key, v in s.items()}
            for i, s in full["state"].items()
        }
        return {"state": state, "param_groups": full["param_groups"]}

    def load_state_dict(self, state: dict) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if len(state["state"]) not in (0, len(params)):
            raise ValueError("optimizer state of another architecture")
        for i, saved in state["state"].items():
            live = self.optimizer.state[params[int(i)]]
            for key, value in saved.items():
                if key == "step":
                    live["step"] = value.clone()
                else:
                    if key not in live:
                        live[key] = torch.zeros_like(params[int(i)])
                    live[key][self.k].copy_(value)
