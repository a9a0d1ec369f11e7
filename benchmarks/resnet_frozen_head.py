"""A linear head on a frozen ResNet, two ways, on the same images for the same epochs, in one process:

  original: every epoch, the whole network's forward on every training image (random flip) and on
            every validation image; each image resized per item with PIL in DataLoader workers
            (Resize, ToTensor, Normalize), fp32, batch 64; the backbone in eval mode, only `fc` learns.
  atml:     `atml run resnet`'s own train_head: the backbone runs once per image and view (both flips
            of the training images, the validation images once) in large no-grad batches,
            preprocessed on the device, in the precision atml uses for pretrained weights here
            (bf16 + channels_last where the hardware runs bf16 natively);
            the head then trains every epoch on the features. The feature cache is off: both ways
            start from nothing.

Prints each way's seconds and validation accuracy, and the ratio; where atml's default precision
is bf16, atml in fp32 too, so the share of the saving that caching alone gives is visible. The
saving grows with the epochs: the original pays a backbone pass per image per epoch, atml two per
training image (both flips) and one per validation image, in all.

  # FashionMNIST (Debian's package), 1024 + 512 images, 64 px, ResNet-152:
  python -m benchmarks.resnet_frozen_head
  # the original's setting:
  python -m benchmarks.resnet_frozen_head --dataset cifar10 --root data --resolution 224 --weights imagenet
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from atml.config import resolve
from atml.data.draws import Draw
from atml.data.images import NAMES
from atml.experiments import resnet
from atml.experiments.resnet import parts as resnet_parts
from atml.models.resnet import apply_policy, replace_head
from atml.runs import Run
from atml.runtime import resolve_precision
from benchmarks.common import Comparison


class PilImages(Dataset):
    """What torchvision's CIFAR datasets do per item: uint8 array → PIL image → transform."""

    def __init__(self, split: Draw, transform):
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, i: int):
        image = self.split.images[i].permute(1, 2, 0).numpy()
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
        return self.transform(pil), int(self.split.labels[i])


def original_way(ctx: resnet_parts.ResnetContext, workers: int) -> tuple[float, float]:
    """The notebook's loop; returns (seconds, final validation accuracy)."""
    cfg = ctx.cfg
    started = time.perf_counter()
    train, val = ctx.splits()
    p = ctx.frozen(cfg.model.name).preprocess
    common = [
        transforms.Resize((p.size, p.size), antialias=True),
        transforms.ToTensor(),
        transforms.Normalize(p.mean, p.std),
    ]
    train_loader = DataLoader(
        PilImages(train, transforms.Compose([transforms.RandomHorizontalFlip(), *common])),
        batch_size=cfg.train.batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )
    val_loader = DataLoader(
        PilImages(val, transforms.Compose(common)), batch_size=cfg.train.batch_size, num_workers=workers
    )
    model = ctx.frozen(cfg.model.name).copy_of_model()
    with ctx.seeds.initialising():
        replace_head(model, len(train.classes))
    apply_policy(model, "frozen")
    model.eval()  # the frozen backbone's BatchNorm keeps its statistics, as in atml
    optimizer = torch.optim.Adam(model.fc.parameters(), lr=cfg.train.lr)
    for epoch in range(cfg.train.epochs):
        for x, y in train_loader:
            x, y = x.to(ctx.device), y.to(ctx.device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(ctx.device), y.to(ctx.device)
                correct += (model(x).argmax(1) == y).sum().item()
        print(
            f"  original epoch {epoch + 1}/{cfg.train.epochs}: val accuracy {correct / len(val.labels):.3f} "
            f" [{time.perf_counter() - started:.0f} s]",
            flush=True,
        )
    return time.perf_counter() - started, correct / len(val.labels)


def atml_way(ctx: resnet_parts.ResnetContext, cfg: resnet.Config) -> tuple[float, float]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create(folder, "resnet", "benchmark", cfg.model_dump(), env={})
        trained = resnet_parts.train_head(ctx, cfg, cfg.model.name, run, "benchmark-head")
    return time.perf_counter() - started, trained.history.epochs[-1]["val_acc"]


def main(argv: list[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="fashion-mnist", choices=NAMES)
    parser.add_argument("--root", default="data")
    parser.add_argument("--arch", default="resnet152")
    parser.add_argument(
        "--weights",
        default="none",
        help="none (random init: no download) | imagenet | IMAGENET1K_V2 | a file",
    )
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--val-images", type=int, default=512)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="head epochs (the original: 3)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the original way")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    _, cfg = resolve(
        "resnet",
        resnet.Config,
        sets=[
            f"data.dataset={args.dataset}",
            f"data.root={args.root}",
            "data.download=false",
            f"data.train_images={args.train_images}",
            f"data.test_images={args.val_images}",
            f"model.img_size={args.resolution}",
            f"model.name={args.arch}",
            f"model.weights={args.weights}",
            f"train.epochs={args.epochs}",
            "model.cache=false",
            # the precision atml runs pretrained weights in here (random weights only stand in
            # for them: same cost, no download)
            f"model.precision={resolve_precision(device, 'auto')}",
        ],
    )
    ctx = resnet.EXPERIMENT.prepare(
        cfg, device, ["baseline"]
    )  # data and weights loaded before either clock starts
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.arch} ({args.weights} "
        f"weights) on {args.dataset}: "
        f"{args.train_images} training + {args.val_images} validation images at {args.resolution} px, "
        f"{args.epochs} head epochs, "
        f"atml precision {cfg.model.precision}",
        flush=True,
    )
    original_s, original_acc = original_way(ctx, args.workers)
    ours = {cfg.model.precision: atml_way(ctx, cfg)}
    if cfg.model.precision != "fp32":  # the share of the saving that caching alone gives
        fp32 = cfg.model_copy(update={"model": cfg.model.model_copy(update={"precision": "fp32"})})
        ours["fp32"] = atml_way(resnet.EXPERIMENT.prepare(fp32, device, ["baseline"]), fp32)
    print(
        f"{'original (full forward every epoch, PIL per item, fp32)':>58s}: {original_s:7.1f} s   val "
        f"accuracy {original_acc:.3f}"
    )
    for precision, (seconds, accuracy) in ours.items():
        name = f"atml (backbone once per view, {precision})"
        print(
            f"{name:>58s}: {seconds:7.1f} s   val accuracy {accuracy:.3f}   speed-up "
            f"{original_s / seconds:.1f}x"
        )
    print(
        "(accuracies differ by design: atml standardises the features, which a random ResNet-152's "
        "~1e4-scale features need)"
    )
    result = Comparison(
        "resnet_frozen_head",
        f"a linear head on a frozen {args.arch} ({args.weights} weights), {args.train_images} + "
        f"{args.val_images} {args.dataset} images at {args.resolution} px, {args.epochs} epochs",
        "full forward every epoch, PIL per item, fp32",
        f"backbone once per view, {cfg.model.precision}",
        original_s,
        ours[cfg.model.precision][0],
        str(device),
    )
    result.print_ratio()
    return result


if __name__ == "__main__":
    main()
