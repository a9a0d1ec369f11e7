"""Where the default configs' pretrained weights go in each library's cache, known without
importing torchvision, timm or open_clip, so that `atml data check` answers at once.
tests/test_light_commands.py checks every entry against the libraries' own metadata and the
defaults of the experiments' configs; a default that changes fails there until it is listed here."""

from __future__ import annotations

import os
from pathlib import Path

# torchvision: architecture → {weights name: file name in torch hub's checkpoints folder}
TORCHVISION_FILES = {
    "resnet18": {"IMAGENET1K_V1": "resnet18-f37072fd.pth"},
    "resnet152": {"IMAGENET1K_V1": "resnet152-394f9c45.pth", "IMAGENET1K_V2": "resnet152-f82ba261.pth"},
}
# timm model name (with its tag) → its Hugging Face hub repo
TIMM_REPOS = {
    "vit_small_patch16_224.augreg_in21k_ft_in1k": "timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
}
TIMM_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm looks for in a repo
# open_clip (model, pretrained tag) → its Hugging Face hub repo
OPEN_CLIP_REPOS = {("ViT-B-32", "openai"): "timm/vit_base_patch32_clip_224.openai"}
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what its repos hold

Row = tuple[str, Path, bool]  # (weights name, cache file or the folder it goes in, present?)


def torch_hub_checkpoints() -> Path:
    """torch.hub.get_dir()/checkpoints, as torch computes it from the environment."""
    if "TORCH_HOME" in os.environ:
        home = Path(os.environ["TORCH_HOME"])
    else:
        home = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return home.expanduser() / "hub" / "checkpoints"


def hub_cache_folder(repo: str) -> Path:
    import huggingface_hub.constants

    return Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def _hub_row(name: str, repo: str | None, files: tuple[str, ...]) -> Row:
    if repo is None:
        return name, Path("(not listed in atml/models/weight_files.py)"), False
    from huggingface_hub import try_to_load_from_cache

    for filename in files:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return name, Path(found), True
    return name, hub_cache_folder(repo), False


def torchvision_rows(archs: tuple[str, ...]) -> list[Row]:
    rows = []
    for arch in archs:
        for weights, filename in TORCHVISION_FILES.get(arch, {}).items():
            path = torch_hub_checkpoints() / filename
            rows.append((f"{arch} {weights}", path, path.is_file()))
    return rows


def timm_rows(names: tuple[str, ...]) -> list[Row]:
    return [_hub_row(name, TIMM_REPOS.get(name), TIMM_FILES) for name in names]


def open_clip_rows(models: tuple[tuple[str, str], ...]) -> list[Row]:
    return [
        _hub_row(f"{name} {tag}", OPEN_CLIP_REPOS.get((name, tag)), OPEN_CLIP_FILES) for name, tag in models
    ]
