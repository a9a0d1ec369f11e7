"""Commands that do not train import neither torch, torchvision nor matplotlib: each runs in a
fresh process under `python -X importtime`, and the modules it imported are read from that list
(not timed: a slow machine must not fail a test, an import must)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = {"torch", "torchvision", "matplotlib", "timm", "open_clip", "sklearn", "umap"}


def imported_modules(*args: str, cwd) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "atml", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    message = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
    return done.returncode, modules, message


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["-h"], 0),
        (["--version"], 0),
        (["study", "resume", "-h"], 0),
        (["run", "resnet", "--set", "model.arch=resnet18"], 2),  # an old key, renamed
        (["list"], 0),
        (["config", "vae"], 0),
        (["config", "resnet", "--preset", "original"], 0),
        (["data", "check"], 0),
        (["cache", "info"], 0),
        (["run", "--help"], 0),
        (["run", "resnet", "--set", "foo=1"], 2),  # unknown key
        (["run", "vae", "--set", "train.epochs=x"], 2),  # bad value
        (["run", "vae", "--nope"], 2),  # bad flag
        (["run", "gan", "--preset", "nope"], 2),  # bad preset
        (["run", "gan", "--part", "nope"], 2),  # bad part
        (["run", "gan", "--seeds", "0,x"], 2),
        (["run", "gan", "--device", "tpu"], 2),
        (["run", "all", "--set", "train.nonsense=1"], 2),
        (["run", "all", "--set", "train.epochs=-1"], 2),  # a bad value for one experiment of all
        (["run", "gan", "--resume", "no-such-run"], 2),  # a missing run folder
        (["run", "vit", "--set", "model.name=vit_small_patch16_244"], 2),  # a misspelt timm model
        (["run", "clip", "--set", "model.name=ViT-B-23"], 2),  # a misspelt open_clip model
    ],
)
def test_a_command_that_does_not_train_imports_no_heavy_library(args, code, tmp_path):
    rc, modules, message = imported_modules(*args, cwd=tmp_path)
    assert rc == code, message
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"atml {' '.join(args)} imported {heavy[:5]}"
    if code == 2:
        assert message.startswith("atml: error:") and len(message.splitlines()) == 1, message
    assert not (tmp_path / "outputs").exists()


def test_a_valid_run_does_import_torch(tmp_path, fake_root):
    """The check above would pass for a CLI that imports nothing at all: a real run must."""
    rc, modules, message = imported_modules(
        "run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}",
        "--set", "train.epochs=1", "--out", str(tmp_path / "o"), cwd=tmp_path,
    )  # fmt: skip
    assert rc == 0, message
    assert "torch" in modules


def test_the_weights_table_matches_the_libraries_and_the_default_configs():
    import open_clip
    import timm
    import torchvision.models as tvm

    from atml.experiments.clip import ClipModelConfig
    from atml.experiments.resnet import CompareDepthConfig, ResnetModelConfig
    from atml.experiments.vit import VitModelConfig
    from atml.models import weight_files

    archs = {*CompareDepthConfig().archs, ResnetModelConfig().name}
    assert archs <= set(weight_files.TORCHVISION_FILES)
    for arch, files in weight_files.TORCHVISION_FILES.items():
        assert files == {w.name: os.path.basename(w.url) for w in tvm.get_model_weights(arch)}
    assert VitModelConfig().name in weight_files.TIMM_REPOS
    for name, repo in weight_files.TIMM_REPOS.items():
        assert timm.models.get_pretrained_cfg(name).hf_hub_id == repo
    clip = ClipModelConfig()
    assert (clip.name, clip.weights) in weight_files.OPEN_CLIP_REPOS
    for (name, tag), repo in weight_files.OPEN_CLIP_REPOS.items():
        assert open_clip.get_pretrained_cfg(name, tag)["hf_hub"].rstrip("/") == repo


def test_the_shipped_model_names_are_the_installed_libraries_lists():
    """Trusted only for the versions they came from; regenerate with python -m atml.models.model_names."""
    import open_clip
    import timm

    from atml.models import model_names

    shipped = json.loads(model_names.LIST.read_text())
    for library, names in (("timm", timm.list_models()), ("open_clip", open_clip.list_models())):
        if model_names._installed(library) != shipped[library]["version"]:
            pytest.skip(f"{library} {model_names._installed(library)} is installed, the list is of another")
        assert shipped[library]["names"] == sorted(names)
    assert model_names.unknown("timm", "vit_small_patch16_224.augreg_in21k_ft_in1k") is None
    assert "did you mean vit_small_patch16_224" in model_names.unknown("timm", "vit_small_patch16_244")


@pytest.mark.parametrize("env", [{}, {"TORCH_HOME": "/elsewhere/torch"}, {"XDG_CACHE_HOME": "/xdg"}])
def test_the_torch_hub_folder_is_torchs_own(env, monkeypatch):
    import torch

    from atml.models.weight_files import torch_hub_checkpoints

    for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert torch_hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints"


def test_version_and_short_help(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"atml {version('atml')}"
    code, out, _ = cli("run", "-h")
    assert code == 0 and "--sweep" in out and "--launcher" in out


def test_shell_completion_is_offered_and_completes_experiments(tmp_path):
    """`atml --install-completion` (typer's) installs it; the completion names the experiments."""
    atml = str(Path(sys.executable).with_name("atml"))  # the installed command, the name completion keys on
    script = subprocess.run([atml, "--show-completion", "bash"], capture_output=True, text=True, cwd=tmp_path)
    assert script.returncode == 0 and "_atml_completion" in script.stdout
    env = os.environ | {"_ATML_COMPLETE": "complete_bash", "COMP_WORDS": "atml run v", "COMP_CWORD": "2"}
    done = subprocess.run([atml], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.stdout.split() == ["vit", "vae"]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["run", "gna"], "(did you mean 'gan'?)"),
        (["run", "gan", "--part", "basline"], "(did you mean 'baseline'?)"),
        (["run", "gan", "--seeed", "3"], "(did you mean '--seed'?)"),
        (["run", "gan", "--set", "train.epoch=5"], "(did you mean 'train.epochs'?)"),
        (["run", "vae", "--beta-schedul", "linear"], "(did you mean '--beta-schedule'?)"),
        (["run", "gan", "train.epochs=5"], "(to set a config key: --set train.epochs=5)"),
    ],
)
def test_a_near_miss_is_answered_with_what_was_likely_meant(cli, args, hint):
    code, _, err = cli(*args)
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1, err
