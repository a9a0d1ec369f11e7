"""Config resolution: packaged YAML defaults → a preset → smoke overrides → --config file → flags → --set.

Every layer is merged into a plain dict, then checked key by key against the experiment's
pydantic schema (so an unknown key names the keys accepted there) and validated by type.
"""

from __future__ import annotations

import copy
import os
import re
import types
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atml.errors import UserError, did_you_mean, shorten

# What a model's passes run in: auto = bf16 autocast where the hardware runs bf16 natively, else fp32
# (atml.runtime.resolve_precision).
Precision = Literal["auto", "fp32", "bf16"]

# A run's seed; every random draw's stream is derived from it by purpose (atml.seeding).
Seed = Annotated[int, Field(ge=0, lt=2**32)]


def config_dir(experiment: str) -> Traversable:
    """An experiment's configs (default.yaml, smoke.yaml, PRESET.yaml): the `configs/` folder inside
    its package, or ATML_CONFIG_DIR/EXPERIMENT/ when ATML_CONFIG_DIR names a folder of such folders."""
    override = os.environ.get("ATML_CONFIG_DIR")
    if override:
        if not Path(override).is_dir():
            why = "is not a folder of experiments' configs (unset it for the shipped ones)"
            raise UserError(f"ATML_CONFIG_DIR={shorten(override)} {why}")
        return Path(override) / experiment
    if experiment not in CONFIG_PACKAGES:
        raise UserError(f"unknown experiment '{experiment}'")
    return files(CONFIG_PACKAGES[experiment]) / "configs"


# experiment → the package whose configs/ holds its YAML; atml.experiments fills it as it finds them
CONFIG_PACKAGES: dict[str, str] = {}


DEFAULTS, SMOKE = "default", "smoke"  # an experiment's configs/default.yaml and configs/smoke.yaml


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class FixedSeeds(Strict):
    """Purposes whose seed is given outright instead of derived from the run's seed (atml.seeding):
    what the original notebooks passed as scikit-learn's and UMAP's random_state (42)."""

    projection: Seed | None = Field(None, description="t-SNE, UMAP and PCA maps (null: from `seed`)")
    split: Seed | None = Field(
        None, description="fit/score splits and cross-validation folds (null: from `seed`)"
    )
    solver: Seed | None = Field(None, description="an estimator's random_state (null: from `seed`)")

    def given(self) -> dict[str, int]:
        return self.model_dump(exclude_none=True)


class FrozenModelSection(Strict):
    """`model` of the experiments that read a frozen pretrained model (ResNet, ViT, CLIP): one name
    per concept across them. Each subclass sets its defaults and adds what only it has."""

    name: str
    weights: str = Field(description="the pretrained weights' tag | a local file | none (random init)")
    batch_size: int = Field(ge=1, description="images per no-grad forward")
    precision: Precision = Field(
        "auto", description="auto: bf16 autocast where the hardware runs it natively, else fp32"
    )
    cache: bool = Field(
        True, description="reuse the model's outputs across parts and runs (~/.cache/atml/features)"
    )


class DrawsSection(Strict):
    """`data` of the frozen-model experiments: a labelled dataset, where it is, and fixed random
    draws of its splits (`train_images` where an experiment trains or fits on one)."""

    root: str = "data"
    download: bool = True
    test_images: int | None = Field(
        None, ge=2, description="a fixed random draw of the test split (null: all)"
    )
    subset_seed: Seed = 0


def renamed_key(schema: type[BaseModel], dotted: str) -> str | None:
    """The key an old config key of `schema` is now called (its `renamed` map), or None."""
    return getattr(schema, "renamed", {}).get(dotted)


def settings(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Every setting of a config by its dotted key (an empty mapping is a setting of its own)."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        found |= settings(value, name) if isinstance(value, dict) and value else {name: value}
    return found


def _dotted_keys(data: dict, path: str = "") -> Iterable[str]:
    for key, value in data.items():
        yield f"{path}{key}"
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{path}{key}.")


def check_not_renamed(data: dict, schema: type[BaseModel]) -> None:
    """A UserError naming the first old key in `data` and what it is called now."""
    for dotted in _dotted_keys(data):
        new = renamed_key(schema, dotted)
        if new:
            raise UserError(
                f"config key '{dotted}' is now '{new}' (one name per setting across ResNet, ViT and CLIP)"
            )


def upgrade(data: dict, schema: type[BaseModel]) -> dict:
    """A config an earlier atml wrote (a run folder's config.yaml), its old keys moved to their new
    names, so old runs still resume and report."""
    data = copy.deepcopy(data)
    for old, new in getattr(schema, "renamed", {}).items():
        value = _pop(data, old)
        if value is not _MISSING:
            data = _put(data, new, value)
    return data


_MISSING = object()


def _pop(data: dict, dotted: str) -> Any:
    head, _, rest = dotted.partition(".")
    if head not in data:
        return _MISSING
    if not rest:
        return data.pop(head)
    return _pop(data[head], rest) if isinstance(data[head], dict) else _MISSING


MAX_CONFIG_BYTES = 1_000_000  # atml's largest config is a few kB; this only stops a runaway file


class AliasRefused(yaml.YAMLError):
    """A YAML alias (*name) in a config: refused, never expanded."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors' aliases (*name): a few nested aliases expand to gigabytes ("billion
    laughs"), and no atml setting needs one."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise AliasRefused(f"aliases (*name) are not accepted in atml configs (line {mark.line + 1})")
        return super().compose_node(parent, index)


# YAML 1.2's floats: PyYAML reads YAML 1.1, where 1e-3 (no dot) is a string; a config is written and
# read as numbers people type, so 1e-3 and 5E4 are floats here too (tried after PyYAML's own resolvers)
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 — a SafeLoader subclass
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise yaml.YAMLError(shorten(str(exc))) from None


def read_yaml(path: Path | Traversable) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_CONFIG_BYTES:
            raise UserError(f"config file {path} is {len(raw):,} bytes; atml reads configs up to 1 MB")
        data = load_yaml(raw.decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping at its top level")
    return data


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: override's values replace base's; nested mappings merge key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def split_set(assignment: str) -> tuple[str, Any]:
    """'train.lr_g=1e-3' → ('train.lr_g', 0.001); the value is read as YAML."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(
            f"--set expects key=value with a dotted key, e.g. train.epochs=5; got '{shorten(assignment)}'"
        )
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"--set {shorten(key)}: a value of {len(raw):,} characters; at most 1 MB")
    try:
        value = load_yaml(raw) if raw else None
    except AliasRefused as exc:
        raise UserError(f"--set {shorten(key)}: {exc}") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(dotted_key: str, value: Any) -> dict:
    nested: Any = value
    for part in reversed(dotted_key.split(".")):
        nested = {part: nested}
    return nested


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # Optional[Section] and friends
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _admits_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(annotation))
    if origin is Annotated:
        return _admits_bool(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_admits_bool(a) for a in get_args(annotation))
    return False


def _bool_for_number(value: Any, annotation: Any) -> bool:
    """True/false given where the schema wants a number (pydantic would read true as 1)."""
    if isinstance(value, bool):
        return not _admits_bool(annotation)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _bool_for_number(value, get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return all(_bool_for_number(value, a) for a in get_args(annotation) if a is not type(None))
    if isinstance(value, (list, tuple)) and origin in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis] or [Any]
        return any(_bool_for_number(v, args[min(i, len(args) - 1)]) for i, v in enumerate(value))
    return False


def check_keys(data: dict, schema: type[BaseModel], path: str = "") -> None:
    """Raise a UserError naming the first unknown key and the keys accepted beside it, or the
    first true/false given for a number."""
    for key, value in data.items():
        where = f"{path}{key}"
        field = schema.model_fields.get(key)
        if field is None:
            accepted = ", ".join(schema.model_fields)
            scope = f" under '{path[:-1]}'" if path else ""
            hint = did_you_mean(str(key), schema.model_fields, prefix=path)
            raise UserError(f"unknown config key '{shorten(where)}'{hint}; accepted{scope}: {accepted}")
        if _bool_for_number(value, field.annotation):
            got = shorten(repr(value))
            raise UserError(f"bad config value '{where}' (got {got}): true/false is not a value of this key")
        sub = _model_class(field.annotation)
        if sub is not None and isinstance(value, dict) and get_origin(field.annotation) is not dict:
            check_keys(value, sub, f"{where}.")


def has_key(schema: type[BaseModel], dotted: str) -> bool:
    """Whether `dotted` (e.g. data.root) names a key of the schema."""
    head, _, rest = dotted.partition(".")
    field = schema.model_fields.get(head)
    if field is None:
        return False
    if not rest:
        return True
    sub = _model_class(field.annotation)
    return sub is None and get_origin(field.annotation) is dict or sub is not None and has_key(sub, rest)


def validate(data: dict, schema: type[BaseModel], prefix: str = "") -> BaseModel:
    if not prefix:
        check_not_renamed(data, schema)
    check_keys(data, schema, prefix)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = prefix + ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        shown = f" (got {shorten(repr(value))})" if not isinstance(value, dict) else ""
        raise UserError(f"bad config value '{loc}'{shown}: {err['msg']}") from None


def presets(experiment: str) -> list[str]:
    """The presets shipped for an experiment: each configs/NAME.yaml but its defaults and smoke."""
    folder = config_dir(experiment)
    if not folder.is_dir():
        return []
    names = (entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))
    return sorted(n for n in names if n not in (DEFAULTS, SMOKE) and "." not in n)


def check_preset(experiment: str, preset: str) -> None:
    known = presets(experiment)
    if preset not in known:
        raise UserError(
            f"unknown preset '{preset}' for {experiment}{did_you_mean(preset, known)}; "
            f"presets: {', '.join(known) or 'none'}"
        )


def resolve(
    experiment: str,
    schema: type[BaseModel],
    *,
    preset: str | None = None,
    config_file: Path | None = None,
    smoke: bool = False,
    flags: dict[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> tuple[dict, BaseModel]:
    """The merged plain config and its validated typed form. Layers, each over the one before:
    defaults → preset → smoke → --config file → the experiment's flags → --set."""
    shipped = config_dir(experiment)
    data = read_yaml(shipped / f"{DEFAULTS}.yaml")
    layers = []
    if preset is not None:
        check_preset(experiment, preset)
        layers.append(read_yaml(shipped / f"{preset}.yaml"))
    if smoke:
        layers.append(_smoke_layer(read_yaml(shipped / f"{SMOKE}.yaml"), keep_model=preset is not None))
    if config_file is not None:
        layer = read_yaml(Path(config_file))
        try:
            check_not_renamed(layer, schema)
            check_keys(layer, schema)  # named here: another experiment's config file is a likely slip
        except UserError as exc:
            raise UserError(f"--config {config_file}: {exc}") from None
        layers.append(layer)
    layers.extend(_nest(key, value) for key, value in (flags or {}).items())
    for layer in layers:
        data = deep_merge(data, layer)
    for assignment in sets:  # --set replaces the value at its key whole: key={} empties a mapping
        data = _put(data, *split_set(assignment))
    return data, validate(data, schema)


MODEL_IDENTITY = ("name", "weights")  # what a preset's model is; --smoke shrinks its data, not these


def _smoke_layer(layer: dict, keep_model: bool) -> dict:
    """The smoke override; over a preset without its model's name and weights: `--preset original
    --smoke` runs the preset's named weights on smoke-sized data (what `atml data fetch --for`
    prefetches for it)."""
    model = layer.get("model")
    if not keep_model or not isinstance(model, dict):
        return layer
    return {**layer, "model": {k: v for k, v in model.items() if k not in MODEL_IDENTITY}}


def _put(data: dict, dotted_key: str, value: Any) -> dict:
    """A copy of `data` with `value` in place of whatever was at `dotted_key`."""
    head, _, rest = dotted_key.partition(".")
    out = dict(data)
    if rest:
        inner = out.get(head)
        out[head] = _put(inner if isinstance(inner, dict) else {}, rest, value)
    else:
        out[head] = copy.deepcopy(value)
    return out


class ClassifierConfig(Strict):
    """The digit classifier that judges generated samples (GAN, VAE): atml.models.sample_classifier."""

    judge: Literal["shipped", "train"] = Field(
        "shipped",
        description="shipped: the judge atml ships (the same numbers on every machine); train: one trained "
        "here on the run's training images by the settings below (cached)",
    )
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: Seed = 0
