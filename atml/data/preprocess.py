"""Model input preparation on the device, batched: uint8 images → resized, normalised floats.

What a pretrained model expects (size, mean, std, interpolation) comes from its weights'
metadata (atml.models.weights); this module only applies it, on whole batches where they live.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # torch's F.interpolate mode: bilinear | bicubic | nearest
    crop_pct: float = 1.0  # timm's: resize to size / crop_pct, then take the centre size × size

    def describe(self) -> dict:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }


def to_model_input(
    images: torch.Tensor, pp: Preprocess, flip: bool = False, channels_last: bool = False
) -> torch.Tensor:
    """uint8 [B, C, H, W] (C = 1 or 3) → float [B, 3, size, size], normalised; mirrored if `flip`.
    Dataset images are square, so a resize (then the centre crop, where crop_pct < 1) is the whole
    geometric step."""
    x = images.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    resized = round(pp.size / pp.crop_pct)
    if x.shape[-2:] != (resized, resized):
        antialias = pp.interpolation in ("bilinear", "bicubic") and min(x.shape[-2:]) > resized
        x = F.interpolate(
            x,
            size=(resized, resized),
            mode=pp.interpolation,
            antialias=antialias,
            **({} if pp.interpolation == "nearest" else {"align_corners": False}),
        )
        if pp.interpolation == "bicubic":
            x = x.clamp_(0, 1)  # bicubic overshoots; PIL clips too
    if resized != pp.size:
        top = (resized - pp.size) // 2
        x = x[..., top : top + pp.size, top : top + pp.size]
    if flip:
        x = x.flip(-1)
    mean = torch.tensor(pp.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
