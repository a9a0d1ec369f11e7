import json

import pytest
import torch

from atml import experiments
from atml.errors import UserError
from atml.runs import Run, atomic_write_text


def make(tmp_path, name="x"):
    return Run.create(tmp_path, "gan", name, {"seed": 1}, env={"experiment": "gan", "parts": ["baseline"]})


def test_create_writes_config_env_and_folders(tmp_path):
    run = make(tmp_path)
    assert run.config == {"seed": 1}
    env = run.env
    assert (
        env["experiment"] == "gan" and env["packages"]["torch"] and "command" in env and "git_commit" in env
    )
    for sub in ("history", "plots", "samples", "checkpoints"):
        assert (run.dir / sub).is_dir()


def test_new_runs_never_reuse_a_folder(tmp_path):
    first, second = make(tmp_path), make(tmp_path)
    assert first.dir != second.dir
    assert first.dir.parent == second.dir.parent


def test_metrics_merge_by_part_and_history_csv(tmp_path):
    run = make(tmp_path)
    run.record_metrics("a", {"x": 1})
    run.record_metrics("b", {"y": 2})
    assert json.loads((run.dir / "metrics.json").read_text()) == {"a": {"x": 1}, "b": {"y": 2}}
    run.write_history("a", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "acc": 0.9}])
    lines = (run.dir / "history" / "a.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,acc" and lines[2] == "2,0.25,0.9"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_checkpoint_roundtrip_loads_weights_only(tmp_path):
    run = make(tmp_path)
    assert run.load_checkpoint("k") is None
    run.save_checkpoint("k", {"epoch": 3, "w": torch.arange(4), "rows": [{"a": 1.0}]})
    saved = run.load_checkpoint("k")
    assert saved["epoch"] == 3 and torch.equal(saved["w"], torch.arange(4)) and saved["rows"] == [{"a": 1.0}]


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="config.yaml"):
        Run.open(tmp_path, experiments.get("gan"))


def test_a_complete_run_deletes_its_checkpoints_unless_kept(cli, fake_root, tmp_path):
    """Checkpoints serve --resume; once every part is done they go (--keep-checkpoints keeps them),
    and the end of the run says how much the folder holds."""
    common = ["run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}"]
    code, out, err = cli(*common, "--out", tmp_path / "dropped")
    assert code == 0, err
    (folder,) = (tmp_path / "dropped" / "gan").iterdir()
    assert not list((folder / "checkpoints").glob("*.pt")) and "training checkpoints" in out
    assert "the run folder holds" in out
    code, out, err = cli(*common, "--keep-checkpoints", "--out", tmp_path / "kept")
    assert code == 0, err
    (folder,) = (tmp_path / "kept" / "gan").iterdir()
    assert {p.name for p in (folder / "checkpoints").glob("*.pt")} == {
        "baseline-assignment.pt",
        "baseline-tuned.pt",
    }
    code, out, err = cli("run", "gan", "--resume", folder)  # complete: nothing to redo, and now they go
    assert code == 0 and "already complete" in out and not list((folder / "checkpoints").glob("*.pt"))


def test_a_finished_parts_checkpoints_go_before_the_next_part_unless_a_later_part_reuses_them(
    cli, fake_root, tmp_path, monkeypatch
):
    """The peak on disk is one part's checkpoints, not the run's: what a later part continues from
    (its declared `reuses`) stays until that part has run."""
    seen = {}
    run_part = experiments.Experiment.run_part

    def spy(self, part, ctxs, runs):
        seen[part] = sorted(p.name for run in runs for p in (run.dir / "checkpoints").glob("*.pt"))
        return run_part(self, part, ctxs, runs)

    monkeypatch.setattr(experiments.Experiment, "run_part", spy)
    code, _, err = cli("run", "gan", "--smoke", "--part", "baseline", "--part", "vanishing",
                       "--set", f"data.root={fake_root}", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert seen == {"baseline": [], "vanishing": []}  # baseline's two checkpoints went when it was done
    code, _, err = cli("run", "vae", "--smoke", "--part", "train", "--part", "samples",
                       "--set", f"data.root={fake_root}", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert seen["samples"] == ["vae-constant.pt"]  # samples continues from train's model
    (folder,) = (tmp_path / "vae").iterdir()
    assert not list((folder / "checkpoints").glob("*.pt"))


def test_the_runner_writes_what_a_part_returns_and_refuses_a_figure_it_does_not_declare(
    cli, fake_root, tmp_path, monkeypatch
):
    """Outputs take one route: a part returns its figures and curves with its result; the runner
    checks the figures against the part's declarations, then writes them."""
    from atml.experiments.gan import parts

    part_figures = parts.part_figures
    monkeypatch.setattr(parts, "part_figures", lambda *a, **k: part_figures(*a, **k) | {"stray": b"png"})
    code, _, err = cli("run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}",
                       "--out", tmp_path)  # fmt: skip
    assert code == 1 and "gan/baseline drew stray, a figure it does not declare" in err
    (folder,) = (tmp_path / "gan").iterdir()
    assert not list((folder / "plots").glob("*.png")) and not list((folder / "history").glob("*.csv"))
    monkeypatch.setattr(parts, "part_figures", part_figures)
    code, _, err = cli("run", "gan", "--smoke", "--part", "baseline", "--set", f"data.root={fake_root}",
                       "--out", tmp_path / "fine")  # fmt: skip
    assert code == 0, err
    (folder,) = (tmp_path / "fine" / "gan").iterdir()
    drawn = {p.stem for p in (folder / "plots").glob("*.png")}
    assert drawn == {f.name for f in experiments.get("gan").part("baseline").figures}
    assert {p.stem for p in (folder / "history").glob("*.csv")} == {
        "baseline-assignment", "baseline-assignment_steps", "baseline-tuned", "baseline-tuned_steps"
    }  # fmt: skip
