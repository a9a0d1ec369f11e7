"""Features for the ViT probes, two ways, on the same images, in one process:

  original: batches of 8, each image through the processor on its own (PIL → timm's eval
            transform: resize, centre crop, normalise), one full extraction pass per pooling
            (class token, then mean of patch tokens), final layer only, fp32.
  atml:     `atml run vit`'s token_features: one no-grad pass in batches of 64, preprocessing
            batched on the device, the precision atml uses for pretrained weights here (bf16 where
            the hardware runs it natively); it returns both poolings after EVERY block and the
            final norm, i.e. more than the original computes. The feature cache is off.

Prints both times and the ratio; where atml's precision is bf16, atml in fp32 too, so the share
of the saving that batching and one pass alone give is visible.

  python -m benchmarks.vit_probe_features     # FashionMNIST, 256 images, ViT-S/16 at 224 px
  python -m benchmarks.vit_probe_features --weights pretrained --dataset cifar10 --root data
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from PIL import Image

from atml.config import resolve
from atml.data.images import NAMES
from atml.experiments import vit
from atml.experiments.vit import parts as vit_parts
from atml.models.vit import prefix_tokens
from atml.models.weights import timm_data_config
from atml.runtime import resolve_precision
from benchmarks.common import Comparison


def original_way(ctx: vit_parts.VitContext, n: int) -> float:
    import timm.data

    model = ctx.vit.model
    processor = timm.data.create_transform(**timm_data_config(model), is_training=False)
    test = ctx.test
    images = test.images[:n]
    started = time.perf_counter()
    for pooling in ("cls", "mean"):
        features = []
        for start in range(0, n, 8):
            batch = []
            for image in images[start : start + 8]:
                pixels = image.permute(1, 2, 0).numpy()
                rgb = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
                batch.append(processor(rgb))
            with torch.no_grad():
                tokens = model.forward_features(torch.stack(batch).to(ctx.device))
            features.append(tokens[:, 0] if pooling == "cls" else tokens[:, prefix_tokens(model) :].mean(1))
        torch.cat(features)
    return time.perf_counter() - started


def atml_way(ctx: vit_parts.VitContext, n: int) -> float:
    started = time.perf_counter()
    vit_parts.token_features(ctx, ctx.test.head(n), f"test[:{n}]")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="fashion-mnist", choices=NAMES)
    parser.add_argument("--root", default="data")
    parser.add_argument("--model", default="vit_small_patch16_224.augreg_in21k_ft_in1k")
    parser.add_argument(
        "--weights",
        default="none",
        help="none (random init: no download; same cost) | pretrained | a tag | a file",
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    _, cfg = resolve(
        "vit",
        vit.Config,
        sets=[
            f"data.dataset={args.dataset}",
            f"data.root={args.root}",
            "data.download=false",
            f"data.test_images={args.images}",
            f"model.name={args.model}",
            f"model.weights={args.weights}",
            "model.cache=false",
            f"model.precision={resolve_precision(device, 'auto')}",
        ],
    )
    ctx = vit.EXPERIMENT.prepare(cfg, device, ["probe"])  # weights and data loaded before either clock starts
    depth = len(ctx.vit.model.blocks)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model} ({args.weights} "
        f"weights), {args.images} "
        f"{args.dataset} test images; atml precision {cfg.model.precision}",
        flush=True,
    )
    original = original_way(ctx, args.images)
    ours = {cfg.model.precision: atml_way(ctx, args.images)}
    if cfg.model.precision != "fp32":
        ours["fp32"] = atml_way(
            dataclasses.replace(ctx, vit=dataclasses.replace(ctx.vit, precision="fp32")), args.images
        )
    print(
        f"{'original (batch 8, per-image processor, a pass per pooling, final layer)':>76s}: "
        f"{original:6.1f} s"
    )
    for precision, seconds in ours.items():
        print(
            f"{f'atml (one pass, batch 64, both poolings of {depth} blocks + final, {precision})':>76s}: "
            f"{seconds:6.1f} s   "
            f"speed-up {original / seconds:.1f}x"
        )
    result = Comparison(
        "vit_probe_features",
        f"probe features of {args.images} {args.dataset} images, {args.model} ({args.weights} weights)",
        "batch 8, per-image processor, a pass per pooling, final layer, fp32",
        f"one pass, batch 64, both poolings of every block, {cfg.model.precision}",
        original,
        ours[cfg.model.precision],
        str(device),
    )
    result.print_ratio()
    return result


if __name__ == "__main__":
    main()
