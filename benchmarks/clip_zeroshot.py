"""Zero-shot classification with every prompt strategy, two ways, on the same images, in one process:

  original: for each strategy, every image through open_clip's own PIL preprocessing one at a
            time and re-encoded in batches of 32, fp32 (the notebooks' loop: the images were
            encoded again inside the loop over prompt strategies).
  atml:     `atml run clip`'s image_embeddings: one no-grad pass in batches of 256, preprocessing
            batched on the device, the precision atml resolves (bf16 where the hardware runs it
            natively, as on CUDA); every strategy reuses those embeddings. The feature cache is off.

Both then build each strategy's class texts the same way and predict; predictions are compared,
so the speed-up is for the same answers (up to precision). Prints both times and the ratio.

  python -m benchmarks.clip_zeroshot          # FashionMNIST, 256 images, random ViT-B-32
  python -m benchmarks.clip_zeroshot --weights openai --dataset stl10 --root data
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image

from atml.analysis.zero_shot import predict
from atml.config import resolve
from atml.data.images import NAMES
from atml.experiments import clip
from atml.experiments.clip import parts as clip_parts
from atml.runtime import resolve_precision
from benchmarks.common import Comparison


def strategies(cfg: clip.Config) -> list[str]:
    return [s for s in cfg.zeroshot.strategies if clip_parts.strategy_templates(cfg, s) is not None]


def original_way(ctx: clip_parts.ClipContext) -> tuple[float, dict[str, torch.Tensor]]:
    import open_clip.transform

    cfg, device, model = ctx.cfg, ctx.device, ctx.clip.model
    transform = open_clip.transform.image_transform_v2(
        open_clip.transform.PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)), is_train=False
    )
    images = ctx.test.images
    predictions = {}
    started = time.perf_counter()
    for strategy in strategies(cfg):
        texts = clip_parts.class_texts(ctx, strategy)
        embeddings = []
        for start in range(0, len(images), 32):
            batch = []
            for image in images[start : start + 32]:
                pixels = image.permute(1, 2, 0).numpy()
                batch.append(
                    transform(
                        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
                    )
                )
            with torch.no_grad():
                embeddings.append(model.encode_image(torch.stack(batch).to(device)).float().cpu())
        predictions[strategy] = predict(torch.cat(embeddings), texts)
    return time.perf_counter() - started, predictions


def atml_way(ctx: clip_parts.ClipContext) -> tuple[float, dict[str, torch.Tensor]]:
    started = time.perf_counter()
    images = clip_parts.image_embeddings(ctx)
    predictions = {
        strategy: predict(images, clip_parts.class_texts(ctx, strategy)) for strategy in strategies(ctx.cfg)
    }
    return time.perf_counter() - started, predictions


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="fashion-mnist", choices=NAMES)
    parser.add_argument("--root", default="data")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument(
        "--weights",
        default="none",
        help="none (random init: no download; same cost) | openai | another tag | a file",
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    _, cfg = resolve(
        "clip",
        clip.Config,
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
    ctx = clip.EXPERIMENT.prepare(
        cfg, device, ["zeroshot"]
    )  # weights and data loaded before either clock starts
    names = strategies(cfg)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; {args.model} "
        f"({args.weights} weights), "
        f"{args.images} {args.dataset} test images, {len(names)} strategies ({', '.join(names)}); atml "
        f"precision {cfg.model.precision}",
        flush=True,
    )
    original, reference = original_way(ctx)
    ours, predicted = atml_way(ctx)
    agreement = min(float((predicted[s] == reference[s]).float().mean()) for s in names)
    print(
        f"{'original (per strategy: per-image PIL preprocessing, batches of 32, fp32)':>78s}: "
        f"{original:6.1f} s"
    )
    print(
        f"{f'atml (one cached pass, batches of 256, {cfg.model.precision}, every strategy reuses it)':>78s}: "
        f"{ours:6.1f} s"
    )
    print(f"same predictions on {agreement:.1%} of images (worst strategy; bf16 vs fp32 can flip near-ties)")
    result = Comparison(
        "clip_zeroshot",
        f"zero-shot with {len(names)} prompt strategies on {args.images} {args.dataset} images, {args.model} "
        f"({args.weights} weights); same predictions on {agreement:.1%}",
        "per strategy: per-image PIL preprocessing, batches of 32, fp32",
        f"one pass, batches of 256, {cfg.model.precision}, reused by every strategy",
        original,
        ours,
        str(device),
    )
    result.print_ratio()
    return result


if __name__ == "__main__":
    main()
