"""Typed part results. Every part returns a `Result` (a pydantic model whose fields are the keys
it writes to metrics.json); the runner records `to_json()`. Headlines are checked against these
models when an experiment is built (`path_problem`), and a result of the wrong shape fails in the
part that made it, not in a report weeks later."""

from __future__ import annotations

import fnmatch
import types
from typing import Any, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError


class Result(BaseModel):
    """A part's numbers and notes. Keys not set are not written (an optional number a run did
    not measure stays absent, as before)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    # what the part drew (figure name → PNG) and logged (history name → rows) beside its numbers:
    # the runner writes them into the run folder, after checking the figures are the part's own
    _figures: dict[str, bytes] = PrivateAttr(default_factory=dict)
    _curves: dict[str, list[dict]] = PrivateAttr(default_factory=dict)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def with_outputs(
        self, figures: dict[str, bytes] | None = None, curves: dict[str, list[dict]] | None = None
    ) -> Self:
        self._figures.update(figures or {})
        self._curves.update(curves or {})
        return self

    @property
    def figures(self) -> dict[str, bytes]:
        return dict(self._figures)

    @property
    def curves(self) -> dict[str, list[dict]]:
        return dict(self._curves)


class KeyedResult(Result):
    """A result whose further keys are named by the config (a part's runs, the β schedules): each
    such key holds a value of the type `__pydantic_extra__` declares."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def weights_mark(result: Any) -> str:
    """What a summary row of a frozen-model part (ResNet, ViT, CLIP: results with `random_weights`)
    adds when its numbers come from random weights."""
    return " (random weights)" if result.random_weights else ""


def _extra_type(model: type[BaseModel]) -> Any | None:
    """The type of each further key of a KeyedResult (its `__pydantic_extra__` values), else None."""
    if not issubclass(model, KeyedResult):
        return None
    extra = model.__annotations__.get("__pydantic_extra__")
    return None if extra is None else get_args(_resolve(model, extra))[1]


def _arms(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def key_matches(key: str, pattern: str) -> bool:
    """A headline path's key pattern: fnmatch, with `a|b` for either of two patterns."""
    return any(fnmatch.fnmatchcase(key, alternative) for alternative in pattern.split("|"))


def _step(annotation: Any, key: str) -> list[Any]:
    """The annotations a value of `annotation` holds under `key` (a fnmatch pattern)."""
    out = []
    for arm in _arms(annotation):
        origin = get_origin(arm)
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            names = {(f.alias or name): f.annotation for name, f in arm.model_fields.items()}
            out += [a for name, a in names.items() if key_matches(name, key)]
            extra = _extra_type(arm)
            if extra is not None:
                out.append(extra)
        elif origin is dict:
            out.append(get_args(arm)[1])
        elif origin is list and (key.isdigit() or key == "*"):
            out.append(get_args(arm)[0])
    return out


def _resolve(model: type[BaseModel], annotation: Any) -> Any:
    if isinstance(annotation, str):  # from __future__ annotations
        import sys

        namespace = vars(sys.modules[model.__module__])
        return eval(annotation, namespace)  # noqa: S307 — a type annotation of atml's own code
    return annotation


def _numeric(annotation: Any) -> bool:
    return any(a in (int, float) or a is Any for a in _arms(annotation))


def path_problem(model: type[BaseModel], path: tuple[str, ...]) -> str | None:
    """None when `path` (keys below the part) can reach a number in a `model`; else why not."""
    current = [model]
    for depth, key in enumerate(path):
        current = [a for annotation in current for a in _step(annotation, key)]
        if not current:
            return f"no key {key!r} at {' → '.join(path[:depth]) or 'the top'} of {model.__name__}"
    if not any(_numeric(a) for a in current):
        return f"{' → '.join(path)} of {model.__name__} is not a number"
    return None


def read(model: type[Result], data: dict) -> Result:
    """`data` (a part's entry of metrics.json) as `model`. A run of an older atml may lack keys
    added since: its result is then built as far as it goes, and reading a key it lacks is an
    AttributeError. Any other mismatch is the ValidationError it is."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        if any(error["type"] != "missing" for error in exc.errors()):
            raise
    return _as_far_as_it_goes(model, data)


def _as_far_as_it_goes(annotation: Any, value: Any) -> Any:
    for arm in _arms(annotation):
        if isinstance(arm, type) and issubclass(arm, BaseModel) and isinstance(value, dict):
            known = {(f.alias or name): name for name, f in arm.model_fields.items()}
            fields = {
                known[key]: _as_far_as_it_goes(arm.model_fields[known[key]].annotation, v)
                for key, v in value.items()
                if key in known
            }
            kind = _extra_type(arm) or Any
            extras = {key: _as_far_as_it_goes(kind, v) for key, v in value.items() if key not in known}
            return arm.model_construct(**fields, **extras)
        if get_origin(arm) is dict and isinstance(value, dict):
            return {key: _as_far_as_it_goes(get_args(arm)[1], v) for key, v in value.items()}
        if get_origin(arm) is list and isinstance(value, list):
            return [_as_far_as_it_goes(get_args(arm)[0], v) for v in value]
    return value
