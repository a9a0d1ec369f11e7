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

    def describe(self) -> dict:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation}


def to_model_input(images: torch.Tensor, pp: Preprocess, flip: bool = False, channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, C, H, W] (C = 1 or 3) → float [B, 3, size, size], normalised; mirrored if `flip`.
    Dataset images are square, so a resize to size × size is the whole geometric step."""
    x = images.float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (pp.size, pp.size):
        antialias = pp.interpolation in ("bilinear", "bicubic") and min(x.shape[-2:]) > pp.size
        x = F.interpolate(x, size=(pp.size, pp.size), mode=pp.interpolation, antialias=antialias,
                          **({} if pp.interpolation == "nearest" else {"align_corners": False}))
    if flip:
        x = x.flip(-1)
    mean = torch.tensor(pp.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
