"""Config resolution: packaged YAML defaults → smoke overrides → --config file → flags → --set.

Every layer is merged into a plain dict, then checked key by key against the experiment's
pydantic schema (so an unknown key names the keys accepted there) and validated by type.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from atml.errors import UserError

CONFIG_DIR = Path(os.environ.get("ATML_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are type-checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
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


def parse_set(assignment: str) -> dict:
    """'train.lr_g=1e-3' → {'train': {'lr_g': 0.001}}; the value is read as YAML."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set expects key=value with a dotted key, e.g. train.epochs=5; got '{assignment}'")
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError:
        value = raw
    return _nest(key, value)


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


def check_keys(data: dict, schema: type[BaseModel], path: str = "") -> None:
    """Raise a UserError naming the first unknown key and the keys accepted beside it."""
    for key, value in data.items():
        where = f"{path}{key}"
        field = schema.model_fields.get(key)
        if field is None:
            accepted = ", ".join(schema.model_fields)
            scope = f" under '{path[:-1]}'" if path else ""
            raise UserError(f"unknown config key '{where}'; accepted{scope}: {accepted}")
        sub = _model_class(field.annotation)
        if sub is not None and isinstance(value, dict) and get_origin(field.annotation) is not dict:
            check_keys(value, sub, f"{where}.")


def validate(data: dict, schema: type[BaseModel], prefix: str = "") -> BaseModel:
    check_keys(data, schema, prefix)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = prefix + ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        raise UserError(f"bad config value '{loc}'{shown}: {err['msg']}") from None


def resolve(
    experiment: str,
    schema: type[BaseModel],
    *,
    config_file: Path | None = None,
    smoke: bool = False,
    flags: dict[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> tuple[dict, BaseModel]:
    """The merged plain config and its validated typed form."""
    data = read_yaml(CONFIG_DIR / f"{experiment}.yaml")
    layers = []
    if smoke:
        layers.append(read_yaml(CONFIG_DIR / f"{experiment}.smoke.yaml"))
    if config_file is not None:
        layers.append(read_yaml(Path(config_file)))
    layers.extend(_nest(key, value) for key, value in (flags or {}).items())
    layers.extend(parse_set(s) for s in sets)
    for layer in layers:
        data = deep_merge(data, layer)
    return data, validate(data, schema)
