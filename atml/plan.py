"""What `atml run` was asked for, checked and resolved into one config per seed before anything
heavy is imported: a mistyped key, value, part or preset is answered at once, and torch is only
loaded (by atml.runner) for a run known to be valid."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from atml import experiments
from atml.config import has_key, presets, renamed_key, resolve
from atml.errors import UserError, did_you_mean, shorten
from atml.experiments import Experiment
from atml.records import check_run, read_env, require_records

log = logging.getLogger("atml")
DEVICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise UserError(f"unknown device '{shorten(device, 40)}'; accepted: {', '.join(DEVICES)}")


@dataclass(frozen=True)
class SeedConfig:
    """One seed's resolved config: the YAML-able dict written to its run folder, and the typed one."""

    raw: dict
    cfg: Any

    @property
    def seed(self) -> int:
        return self.cfg.seed


@dataclass(frozen=True)
class RunRequest:
    """What `atml run EXP` was asked for, parsed and checked."""

    experiment: Experiment
    parts: list[str]
    flags: dict
    sets: list[str]
    config_file: Path | None
    smoke: bool
    seeds: list[int | None]  # None: the config's own seed
    summarise: bool  # --seeds: a summary folder beside the seeds' folders
    out: Path
    label: str
    device: str  # auto | cpu | cuda, picked by the runner
    tracker: str = "none"
    keep_checkpoints: bool = False  # else deleted once every part of a run is done
    preset: str | None = None  # the experiment's configs/PRESET.yaml over its defaults
    configs: tuple[SeedConfig, ...] = field(default=())  # filled by `resolved`


def select_parts(exp: Experiment, requested: list[str] | None) -> list[str]:
    for part in requested or ():
        if part not in exp.part_names:
            hint = did_you_mean(part, exp.part_names)
            raise UserError(
                f"unknown part '{part}' of {exp.name}{hint}; accepted: {', '.join(exp.part_names)}"
            )
    return [p for p in exp.part_names if p in requested] if requested else list(exp.part_names)


def resolved(request: RunRequest) -> RunRequest:
    """The request with every seed's config resolved and validated (a UserError if one is not)."""
    exp = request.experiment
    configs = []
    for s in request.seeds:
        raw, cfg = resolve(
            exp.name,
            exp.config,
            preset=request.preset,
            config_file=request.config_file,
            smoke=request.smoke,
            flags=request.flags | ({"seed": s} if s is not None else {}),
            sets=request.sets,
        )
        configs.append(SeedConfig(raw, cfg))
    return replace(request, configs=tuple(configs))


def per_experiment(sets: list[str], preset: str | None) -> dict[str, tuple[list[str], str | None]]:
    """`atml run all`'s settings split per experiment: the --set keys its schema has, and the preset
    where it has one (logged where it has not). A --set that no experiment has, or a preset none
    has, is a UserError."""
    chosen = {
        name: [s for s in sets if has_key(exp.config, s.partition("=")[0].strip())]
        for name, exp in ((n, experiments.get(n)) for n in experiments.EXPERIMENTS)
    }
    for assignment in sets:
        key = assignment.partition("=")[0].strip()
        without = [name for name, mine in chosen.items() if assignment not in mine]
        if len(without) == len(chosen):
            renamed = {renamed_key(experiments.get(name).config, key) for name in chosen} - {None}
            if renamed:
                raise UserError(f"--set {assignment}: config key '{key}' is now '{renamed.pop()}'")
            raise UserError(f"--set {assignment}: no experiment has this config key (see `atml config EXP`)")
        if without:
            renamed = [
                f"{n} calls it {new}" for n in without if (new := renamed_key(experiments.get(n).config, key))
            ]
            log.info(
                f"atml: --set {key} applies to {', '.join(n for n in chosen if n not in without)}; "
                f"not to {', '.join(without)} (no such key{'; ' if renamed else ''}{'; '.join(renamed)})"
            )
    with_preset = {name for name in chosen if preset in presets(name)}
    if preset is not None and not with_preset:
        everyone = {known for name in chosen for known in presets(name)}
        raise UserError(
            f"unknown preset '{preset}'{did_you_mean(preset, everyone)}: no experiment has it "
            "(see `atml list`)"
        )
    for name in chosen.keys() - with_preset if preset is not None else ():
        log.info(f"atml: {name} has no preset '{preset}'; it runs with its own settings")
    return {name: (mine, preset if name in with_preset else None) for name, mine in chosen.items()}


def plan_all(request: RunRequest) -> list[RunRequest]:
    """`atml run all`: one resolved request per experiment (see per_experiment). Every
    experiment's config is checked before any runs."""
    plans = []
    for name, (sets, preset) in per_experiment(request.sets, request.preset).items():
        exp = experiments.get(name)
        one = replace(request, experiment=exp, parts=list(exp.part_names), sets=sets, preset=preset)
        try:
            plans.append(resolved(one))
        except UserError as exc:
            raise type(exc)(f"{name}: {exc}") from None
    return plans


def check_resume(exp: Experiment, folders: list[Path]) -> None:
    """Each --resume folder is a run folder of `exp` whose records read back typed, checked before
    torch loads: a missing folder, a seed-summary folder (answered with the command that resumes
    its seeds) or another experiment's run is exit 2, a damaged record exit 3 naming the file and
    key, and nothing is written."""
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"--resume {shorten(str(folder))}: no such run folder")
        require_records(folder)
        env = read_env(folder, "this folder cannot be resumed")
        if env.kind == "seed-summary":
            again = " ".join(f"--resume {shorten(str(r), 300)}" for r in (env.runs or {}).values())
            raise UserError(
                f"{folder} is the summary of a --seeds run, not a run; resume its seed folders: "
                f"atml run {exp.name} {again or '--resume SEED_FOLDER ...'}"
            )
        if env.experiment != exp.name:
            raise UserError(f"{folder} is a run of '{shorten(env.experiment, 60)}', not '{exp.name}'")
        check_run(folder, exp)
