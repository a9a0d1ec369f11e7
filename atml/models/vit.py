"""Reading a timm Vision Transformer without editing timm: its softmaxed attention matrices,
its tokens after any block, and a forward pass with some patch tokens dropped.

Works for timm's VisionTransformer family (class token, register tokens, a distillation token,
non-square grids): prefix tokens are counted from the model (`num_prefix_tokens`), never assumed.
"""

from __future__ import annotations

import torch
from torch import nn


def prefix_tokens(model: nn.Module) -> int:
    """Tokens before the patches: class, distillation and register tokens."""
    return int(getattr(model, "num_prefix_tokens", 1))


def patch_grid(model: nn.Module) -> tuple[int, int]:
    """(rows, columns) of patches for the model's input size."""
    return tuple(int(g) for g in model.patch_embed.grid_size)  # type: ignore[return-value]


def patch_size(model: nn.Module) -> tuple[int, int]:
    return tuple(int(p) for p in model.patch_embed.patch_size)  # type: ignore[return-value]


VIT_FAMILIES = ("vision_transformer", "deit")  # timm modules whose models these readers are tested on


def check_vit_name(name: str) -> None:
    """Before anything is loaded (weights downloaded, a constructor given ViT-only arguments): a
    ViT, not another timm model. Unknown names are left to the weights loader, which names them."""
    import timm.models

    arch = name.split(".")[0]
    if timm.models.is_model(arch):
        family = timm.models.model_entrypoint(arch).__module__.rsplit(".", 1)[-1]
        if family not in VIT_FAMILIES:
            raise ValueError(
                f"{name} is a timm '{family}' model, not a Vision Transformer; atml reads the "
                f"{' and '.join(VIT_FAMILIES)} families (e.g. vit_base_patch16_224, deit_small_patch16_224)"
            )


def check_is_vit(model: nn.Module) -> None:
    missing = [
        a for a in ("patch_embed", "_pos_embed", "blocks", "norm", "forward_head") if not hasattr(model, a)
    ]
    if missing or not all(hasattr(b, "attn") and hasattr(b.attn, "attn_drop") for b in model.blocks):
        raise ValueError(
            f"{type(model).__name__} is not a timm VisionTransformer with standard attention blocks"
        )


class AttentionMaps:
    """The softmaxed attention of the named blocks, (batch, heads, tokens, tokens) each, captured
    at the input of timm's `attn_drop` (where the matrix exists only with fused attention off;
    switched off here for those blocks and back on at `remove()`)."""

    def __init__(self, model: nn.Module, layers: list[int] | None = None):
        check_is_vit(model)
        blocks = list(model.blocks)
        self.layers = list(range(len(blocks))) if layers is None else [i % len(blocks) for i in layers]
        self.maps: dict[int, torch.Tensor] = {}
        self._fused = {i: blocks[i].attn.fused_attn for i in self.layers}
        self._blocks = blocks
        self._handles = []
        for i in self.layers:
            blocks[i].attn.fused_attn = False
            self._handles.append(blocks[i].attn.attn_drop.register_forward_hook(self._keep(i)))

    def _keep(self, layer: int):
        def hook(module, inputs, output):
            self.maps[layer] = inputs[0].detach().float()

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for i, fused in self._fused.items():
            self._blocks[i].attn.fused_attn = fused

    def __enter__(self) -> AttentionMaps:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def forward_tokens(
    model: nn.Module, x: torch.Tensor, keep: torch.Tensor | None = None, taps: list[int] | None = None
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """timm's forward_features, step by step: patch embedding and position embedding, then (if
    `keep` gives patch indices, [N] or [B, N]) only those patch tokens and every prefix token go on
    through the blocks. Returns the final normed tokens and the tokens after each block in `taps`."""
    check_is_vit(model)
    tokens = model._pos_embed(model.patch_embed(x))
    if keep is not None:
        n_prefix = prefix_tokens(model)
        keep = keep.to(tokens.device)
        if keep.ndim == 1:
            keep = keep.expand(tokens.shape[0], -1)
        index = torch.cat(
            [torch.arange(n_prefix, device=tokens.device).expand(tokens.shape[0], -1), keep + n_prefix], dim=1
        )
        tokens = torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    tokens = model.norm_pre(model.patch_drop(tokens))
    tapped = {}
    wanted = {t % len(model.blocks) for t in taps or ()}
    for i, block in enumerate(model.blocks):
        tokens = block(tokens)
        if i in wanted:
            tapped[i] = tokens
    return model.norm(tokens), tapped


def pooled(tokens: torch.Tensor, n_prefix: int) -> dict[str, torch.Tensor]:
    """The two readouts the probes compare: the class token and the mean of the patch tokens."""
    return {"cls": tokens[:, 0], "mean": tokens[:, n_prefix:].mean(1)}
