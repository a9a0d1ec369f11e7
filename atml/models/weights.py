"""Pretrained weights, resolved one way for every model library: a named source, a local file,
or `none` (random init). Resolution: local file → the library's own cache → download when
allowed; otherwise one DataNotFoundError naming the file expected and the folder it goes in.

The preprocessing a model expects (size, mean, std, interpolation) comes from its weights' own
metadata, and the source, file and sha256 are recorded for the run's env.json and metrics.
Sources: torchvision classification models (`IMAGENET1K_V1`, `IMAGENET1K_V2`, `imagenet` = V1,
what the original's `pretrained=True` gave), timm models (their pretrained tags) and open_clip
models (theirs, e.g. ViT-B-32 `openai`). Files on the Hugging Face hub are looked for in its
cache first; a download is tried only when allowed and huggingface.co resolves, so offline
runs fail in well under a second instead of after huggingface_hub's retries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from atml.cache import scratch_dir, writable
from atml.data.preprocess import Preprocess
from atml.errors import DataCorruptError, DataNotFoundError, UserError, first_line
from atml.models.weight_files import OPEN_CLIP_FILES, hub_cache_folder
from atml.runtime import load_tensors
from atml.seeding import Seeds

log = logging.getLogger("atml")

ALIASES = {"imagenet": "IMAGENET1K_V1"}  # torchvision's `pretrained=True`, as the original report used


@dataclass(frozen=True)
class WeightsRecord:
    requested: str
    source: str  # "none" | "torchvision:<Enum>.<NAME>" | "file"
    file: str | None = None
    sha256: str | None = None

    def describe(self, init_seed: int | None = None) -> dict:
        """The record; for random weights (`none`) with the seed their init was drawn from, and the
        seed of that seed's "init" stream (atml.seeding) that torch was given."""
        if self.source != "none" or init_seed is None:
            return asdict(self)
        return asdict(self) | {"random_init_seed": init_seed, "init_stream": Seeds(init_seed).value("init")}


@dataclass
class Pretrained:
    model: nn.Module
    preprocess: Preprocess
    record: WeightsRecord
    categories: tuple[str, ...] | None = None


def _reason(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc):
        return "it holds Python objects besides tensors; atml loads tensors only and runs no pickled code"
    return first_line(exc)[:200]


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime)


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_local_file(spec: str) -> bool:
    return spec.endswith((".pt", ".pth", ".bin", ".safetensors")) or os.sep in spec or Path(spec).is_file()


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path | None  # None: random initialisation
    record: WeightsRecord


def resolve_weights(spec: str, named: Callable[[str], tuple[Path, str]], kinds: str) -> ResolvedWeights:
    """The one routine behind every library's `model.weights`: `none` (random init), a local file
    (which must exist), or a name the library's own source resolves: `named(spec)` returns the
    file (from the cache, or downloaded when allowed) and a description of where it came from.
    `kinds` names what a local file may be, for the error message."""
    if spec == "none":
        return ResolvedWeights(None, WeightsRecord(spec, "none"))
    if is_local_file(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DataNotFoundError(
                f"weights file {path} not found; set model.weights to an existing {kinds}, "
                "a named source, or none"
            )
        return ResolvedWeights(path, WeightsRecord(spec, "file", str(path), sha256(path)))
    path, source = named(spec)
    return ResolvedWeights(path, WeightsRecord(spec, source, str(path), sha256(path)))


def load_state_dict(model: nn.Module, path: Path) -> None:
    """A local state dict (weights_only), or a DataCorruptError naming the file."""
    try:
        state = load_tensors(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        model.load_state_dict(state)
    except Exception as exc:  # unpickling, truncation or mismatched keys/shapes
        raise DataCorruptError(
            f"weights file {path} does not load into {type(model).__name__} ({_reason(exc)})"
        ) from None


def _torchvision_preprocess(weights) -> Preprocess:
    t = weights.transforms()
    return Preprocess(
        size=int(t.crop_size[0]), mean=tuple(t.mean), std=tuple(t.std), interpolation=t.interpolation.value
    )


def torchvision_enum(arch: str):
    """torchvision's weights enum of `arch`; an unknown architecture is one line."""
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(arch)
    except ValueError:
        raise UserError(f"unknown torchvision model '{arch}'; e.g. resnet18, resnet50, resnet152") from None


def torchvision_weights(arch: str, spec: str):
    """The member of torchvision's weights enum that `spec` names for `arch` (aliases allowed)."""
    enum = torchvision_enum(arch)
    name = ALIASES.get(spec, spec)
    if name not in enum.__members__:
        accepted = ", ".join([*enum.__members__, *ALIASES, "none", "a path to a state-dict file"])
        raise UserError(f"unknown weights '{spec}' for {arch}; accepted: {accepted}")
    return enum[name]


def torchvision_weights_file(arch: str, spec: str, allow_download: bool) -> tuple[Path, str]:
    """The file of torchvision's named weights in torch hub's cache (downloaded when allowed), and
    where it came from."""
    weights = torchvision_weights(arch, spec)
    path = fetch_url(weights.url, allow_download, what=f"{arch} {weights.name} weights")
    return path, f"torchvision:{type(weights).__name__}.{weights.name}"


def torchvision_classifier(arch: str, spec: str, allow_download: bool) -> Pretrained:
    """A torchvision model with weights `spec`: a name of its weights enum (or an alias), a local
    state-dict file, or `none`. Preprocessing comes from the named weights (or the model's
    default weights when the file or `none` carries no metadata)."""
    import torchvision.models as tvm

    enum = torchvision_enum(arch)
    weights = None if spec == "none" or is_local_file(spec) else torchvision_weights(arch, spec)
    resolved = resolve_weights(
        spec, partial(torchvision_weights_file, arch, allow_download=allow_download), "state-dict file"
    )
    model = tvm.get_model_builder(arch)(weights=None)
    if resolved.path is not None:
        load_state_dict(model, resolved.path)
    return Pretrained(
        model,
        _torchvision_preprocess(weights or enum.DEFAULT),
        resolved.record,
        tuple(weights.meta["categories"]) if weights else None,
    )


def fetch_url(url: str, allow_download: bool, what: str) -> Path:
    """The file of `url` in torch's hub cache, downloaded there if allowed. torchvision names its
    files <name>-<first 8 hex of sha256>.pth: the prefix is checked, so a damaged file is named."""
    path = torch_hub_checkpoints() / os.path.basename(urlparse(url).path)
    stem = path.stem.rsplit("-", 1)
    hash_prefix = stem[1] if len(stem) == 2 and len(stem[1]) >= 8 else None
    if not path.is_file():
        remedy = (
            f"put {path.name} (from {url}) in {path.parent}, or set model.weights to a local file or none"
        )
        if not allow_download:
            raise DataNotFoundError(f"{what} not found (download not allowed): {remedy}")
        if writable(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            log.warning(f"atml: {_uncached(path.parent, what)}")
            path = scratch_dir("torch-hub") / path.name
        try:
            torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=True)
        except Exception as exc:  # URLError offline, RuntimeError on a hash mismatch
            raise DataNotFoundError(f"{what} could not be downloaded ({_reason(exc)}): {remedy}") from None
    if hash_prefix and not sha256(path).startswith(hash_prefix):
        raise DataCorruptError(
            f"{path} does not match the sha256 prefix {hash_prefix} in its name; delete it and fetch it again"
        )
    return path


# --- timm ---------------------------------------------------------------------------------------

TIMM_PRETRAINED = "pretrained"  # the model name's default pretrained tag


def _timm_name(name: str, spec: str) -> str:
    """`name` with the tag `spec` asks for: `pretrained` keeps the name's own (or timm's default) tag."""
    import timm

    base, tag = timm.models.split_model_name_tag(name)
    if spec != TIMM_PRETRAINED:
        tag = spec
    full = f"{base}.{tag}" if tag else base
    if not timm.models.is_model(base):
        raise UserError(
            f"unknown timm model '{base}'; e.g. vit_small_patch16_224, vit_base_patch16_224, "
            "deit_tiny_distilled_patch16_224"
        )
    try:
        known = timm.models.get_pretrained_cfg(full) is not None
    except RuntimeError:  # "Invalid pretrained tag"
        known = False
    if not known:
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{base}.*")]
        raise UserError(
            f"no pretrained weights '{spec}' for {base}; accepted: pretrained, none, a local file, or a "
            f"tag: {', '.join(tags) or 'none known'}"
        )
    return full


def _hub_unreachable() -> str | None:
    """Why no download from the Hugging Face hub (or the mirror HF_ENDPOINT names) can start, or
    None. Offline a DNS lookup fails at once, where huggingface_hub would retry for ~45 s per file;
    behind a proxy the proxy decides."""
    import socket
    import urllib.request

    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(huggingface_hub.constants.ENDPOINT)
    host = url.hostname or ""
    if url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host):
        return None
    try:
        socket.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80))
        return None
    except OSError:
        return f"{host} cannot be reached"


def hub_file(repo: str, filenames: list[str], allow_download: bool, what: str) -> Path:
    """The first of `filenames` of a Hugging Face hub repo found in the hub's cache; else the
    first that downloads, when downloads are allowed and the hub can be reached. A failed download
    leaves no partial file in the cache (huggingface_hub keeps `.incomplete` blobs to resume)."""
    import huggingface_hub

    for filename in filenames:
        found = huggingface_hub.try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return checked_hub_file(Path(found))
    folder = hub_cache_folder(repo)
    remedy = (
        f"put {filenames[0]} from {huggingface_hub.constants.ENDPOINT}/{repo} in the Hugging Face cache "
        f"({folder}: `atml data fetch --for EXPERIMENT` on a machine with internet, then copy {folder}), "
        "or set model.weights to a local file or none"
    )
    if not allow_download:
        raise DataNotFoundError(f"{what} not found (download not allowed): {remedy}")
    unreachable = _hub_unreachable()
    if unreachable:
        raise DataNotFoundError(f"{what} not found and not downloaded ({unreachable}): {remedy}")
    failure, cache = None, {}
    if not writable(Path(huggingface_hub.constants.HF_HUB_CACHE)):
        log.warning(f"atml: {_uncached(Path(huggingface_hub.constants.HF_HUB_CACHE), what)}")
        cache = {"cache_dir": scratch_dir("huggingface")}
        folder = cache["cache_dir"] / folder.name  # the hub's own layout, in the temporary cache
    for filename in filenames:
        try:
            path = Path(huggingface_hub.hf_hub_download(repo, filename, **cache))
        except Exception as exc:  # HTTP errors (a repo may hold only one of the names), timeouts, disk
            failure = failure or exc
            continue
        finally:
            for partial in folder.glob("blobs/*.incomplete"):
                partial.unlink(missing_ok=True)
        try:
            return checked_hub_file(path)
        except DataCorruptError:
            path.resolve().unlink(missing_ok=True)  # the blob; then the snapshot's link to it
            path.unlink(missing_ok=True)
            raise DataCorruptError(
                f"{what}: the download does not match the sha256 the hub announced; nothing was kept, "
                "run again to download it again"
            ) from None
    raise DataNotFoundError(f"{what} could not be downloaded ({_reason(failure)}): {remedy}")


def _uncached(cache: Path, what: str) -> str:
    return (
        f"the cache {cache} is not writable: {what} is downloaded into a temporary folder for this run "
        "only (fetched again next time)"
    )


def checked_hub_file(path: Path) -> Path:
    """A hub cache file whose blob is named by its sha256 (large files: the hub's LFS ETag) must
    have that sha256: a damaged or swapped file is named, never loaded."""
    blob = path.resolve().name
    if re.fullmatch(r"[0-9a-f]{64}", blob) and sha256(path) != blob:
        raise DataCorruptError(
            f"{path} does not match the sha256 its cache entry is named by; delete it and fetch it again"
        )
    return path


def timm_weights_file(full_name: str, allow_download: bool) -> Path:
    """The pretrained file of a timm model in the Hugging Face cache, downloaded there if allowed."""
    import timm

    cfg = timm.models.get_pretrained_cfg(full_name)
    if not cfg.hf_hub_id:
        raise UserError(
            f"{full_name}'s weights are not on the Hugging Face hub; download them yourself and set "
            "model.weights to the file"
        )
    filenames = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    return hub_file(cfg.hf_hub_id, filenames, allow_download, f"{full_name} weights")


def timm_named_file(full_name: str, allow_download: bool) -> tuple[Path, str]:
    """The file of a timm model's pretrained tag, and where it came from."""
    return timm_weights_file(full_name, allow_download), f"timm:{full_name}"


def timm_data_config(model: nn.Module) -> dict:
    """timm's resolve_data_config, with the input size the model was built for (timm keeps the
    weights' own, 224, when img_size is overridden)."""
    import timm.data

    c = timm.data.resolve_data_config({}, model=model)
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None:
        c["input_size"] = (3, *(int(v) for v in size))
    return c


def _timm_preprocess(model: nn.Module) -> Preprocess:
    c = timm_data_config(model)
    return Preprocess(
        size=int(c["input_size"][-1]),
        mean=tuple(c["mean"]),
        std=tuple(c["std"]),
        interpolation=c["interpolation"]
        if c["interpolation"] in ("bilinear", "bicubic", "nearest")
        else "bilinear",
        crop_pct=float(c.get("crop_pct", 1.0)),
    )


def timm_model(name: str, spec: str, allow_download: bool, **kwargs) -> Pretrained:
    """A timm model with weights `spec`: `pretrained` (the name's tag, or timm's default), another
    tag, a local file (timm's own loader: .safetensors / .pth / .npz), or `none`. Preprocessing
    from timm's resolve_data_config; keyword arguments go to timm.create_model (e.g. img_size)."""
    import timm

    full = _timm_name(name, TIMM_PRETRAINED if spec == "none" or is_local_file(spec) else spec)
    resolved = resolve_weights(
        spec,
        lambda _: timm_named_file(full, allow_download),
        "file (.safetensors, .pth, .npz)",
    )
    if resolved.path is None:
        model = timm.create_model(full, pretrained=False, **kwargs)
    else:
        try:
            overlay = {"file": str(resolved.path)}
            model = timm.create_model(full, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        except Exception as exc:  # a damaged, foreign or mismatched file
            raise DataCorruptError(
                f"weights file {resolved.path} does not load into {full} ({_reason(exc)})"
            ) from None
    return Pretrained(model, _timm_preprocess(model), resolved.record, imagenet_class_names(model))


def imagenet_class_names(model: nn.Module) -> tuple[str, ...] | None:
    """Class names of a timm classifier's head from timm's own tables (no download)."""
    import timm.data

    try:
        info = timm.data.infer_imagenet_subset(model)
        names = timm.data.ImageNetInfo(info) if info else None
    except Exception:  # a head timm has no table for
        return None
    return tuple(names.index_to_description(i) for i in range(names.num_classes())) if names else None


# --- open_clip ----------------------------------------------------------------------------------


def check_open_clip_name(name: str) -> None:
    import open_clip

    if name not in open_clip.list_models():
        raise UserError(
            f"unknown open_clip model '{name}'; e.g. ViT-B-32, ViT-B-16, RN50 (all: open_clip.list_models())"
        )


def _open_clip_tag_cfg(name: str, tag: str) -> dict:
    import open_clip

    check_open_clip_name(name)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise UserError(
            f"no pretrained weights '{tag}' for open_clip {name}; accepted: none, a local file, or a tag: "
            f"{', '.join(tags) or 'none known'}"
        )
    return cfg


def open_clip_weights_file(name: str, tag: str, allow_download: bool) -> Path:
    """The checkpoint of an open_clip pretrained tag: from the Hugging Face cache (downloaded
    there if allowed), or, for tags only published at a URL, from torch's hub cache."""
    cfg = _open_clip_tag_cfg(name, tag)
    what = f"open_clip {name} '{tag}' weights"
    if cfg.get("hf_hub"):
        repo, filename = cfg["hf_hub"].rstrip("/"), None
        if cfg["hf_hub"].count("/") > 1 and not cfg["hf_hub"].endswith("/"):
            repo, filename = os.path.split(cfg["hf_hub"])
        filenames = (
            list(OPEN_CLIP_FILES)
            if filename is None
            else [f"{os.path.splitext(filename)[0]}.safetensors", filename]
        )
        return hub_file(repo, filenames, allow_download, what)
    return fetch_url(cfg["url"], allow_download, what)


def open_clip_named_file(name: str, tag: str, allow_download: bool) -> tuple[Path, str]:
    """The checkpoint of an open_clip pretrained tag, and where it came from."""
    return open_clip_weights_file(name, tag, allow_download), f"open_clip:{name}.{tag}"


def open_clip_model(name: str, spec: str, allow_download: bool) -> Pretrained:
    """An open_clip model with weights `spec`: a pretrained tag (`openai`, `laion2b_s34b_b79k`, …),
    a local checkpoint, or `none`. A tag's own settings travel with its file (QuickGELU for the
    OpenAI weights, the normalisation it was trained with). The tokenizer: `open_clip_tokenizer`."""
    import open_clip

    check_open_clip_name(name)
    options: dict = {}

    def named(tag: str) -> tuple[Path, str]:
        cfg = _open_clip_tag_cfg(name, tag)
        options["force_quick_gelu"] = bool(cfg.get("quick_gelu"))
        keys = ("mean", "std", "interpolation", "resize_mode")
        options["force_preprocess_cfg"] = {k: cfg[k] for k in keys if k in cfg}
        return open_clip_named_file(name, tag, allow_download)

    resolved = resolve_weights(spec, named, "checkpoint")
    path = resolved.path
    try:
        model = open_clip.create_model(name, pretrained=str(path) if path else None, **options)
    except Exception as exc:  # a damaged, foreign or mismatched checkpoint
        raise DataCorruptError(
            f"weights file {path} does not load into open_clip {name} ({_reason(exc)})"
        ) from None
    c = open_clip.get_model_preprocess_cfg(model)
    size = c["size"] if isinstance(c["size"], int) else int(c["size"][-1])
    interpolation = (
        c["interpolation"] if c["interpolation"] in ("bilinear", "bicubic", "nearest") else "bicubic"
    )
    return Pretrained(
        model,
        Preprocess(size=size, mean=tuple(c["mean"]), std=tuple(c["std"]), interpolation=interpolation),
        resolved.record,
    )


def open_clip_tokenizer(name: str):
    """open_clip's tokenizer for `name` (CLIP's BPE ships with the package: no download)."""
    import open_clip

    try:
        return open_clip.get_tokenizer(name)
    except Exception as exc:  # a hub tokenizer, offline
        raise DataNotFoundError(
            f"the tokenizer of open_clip {name} is not available offline ({_reason(exc)})"
        ) from None


# --- a frozen model --------------------------------------------------------------------------------

LOADERS = {"torchvision": torchvision_classifier, "timm": timm_model, "open_clip": open_clip_model}
NAMED_FILES: dict[str, Callable[[str, str, bool], tuple[Path, str]]] = {
    "torchvision": torchvision_weights_file,
    "timm": lambda name, spec, allow: timm_named_file(_timm_name(name, spec), allow),
    "open_clip": open_clip_named_file,
}


def weights_file(library: str, name: str, spec: str, allow_download: bool) -> Path | None:
    """The file a model's `model.weights` resolves to, as a run resolves it (a named source
    downloaded into its library's cache when allowed); None for random weights (`none`)."""
    return resolve_weights(spec, lambda s: NAMED_FILES[library](name, s, allow_download), "weights file").path


def frozen(library: str, name: str, spec: str, allow_download: bool, init_seed: int, **options) -> Pretrained:
    """A model of `library` in eval mode without gradients: what the experiments read features
    from (one per run: atml.models.frozen.FrozenModel). `init_seed` fixes what `weights: none`
    starts from."""
    with Seeds(init_seed).initialising():
        pretrained = LOADERS[library](name, spec, allow_download, **options)
    pretrained.model.eval().requires_grad_(False)
    return pretrained
