"""The study: `atml run all`, `--seeds`, `atml report` (Markdown, self-contained HTML, comparison)."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atml import experiments
from atml.seed_summary import aggregate, numeric_leaves, parse_seeds, summary_rows
from tests.conftest import REAL_DATA, REPO, SYSTEM_DATA_HIDDEN, error_lines

ATML = (sys.executable, "-m", "atml")  # the installed package, as its console script runs it


def isolated(tmp_path_factory) -> dict:
    """The environment for an atml subprocess: caches under the test session's folder."""
    return {
        **os.environ,
        "ATML_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "cache"),
        "MPLBACKEND": "Agg",
    }


needs_real_data = pytest.mark.skipif(
    SYSTEM_DATA_HIDDEN
    or not (REAL_DATA / "MNIST" / "raw").is_dir()
    or not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="needs MNIST's test split in ../shared/datasets and Debian's dataset-fashion-mnist (CI has both; "
    "ATML_NO_SYSTEM_DATA=1 hides them)",
)


def test_seed_arithmetic():
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("4,7") == [4, 7]
    numbers = aggregate(
        {0: {"a": {"x": 1.0, "flag": True, "list": [2, 4]}}, 1: {"a": {"x": 3.0, "list": [4, 4]}}}
    )
    assert (
        numbers["a.x"]["mean"] == 2.0
        and numbers["a.x"]["std"] == pytest.approx(2**0.5)
        and numbers["a.x"]["n"] == 2
    )
    assert numbers["a.list.0"]["mean"] == 3.0 and "a.flag" not in numbers
    assert numeric_leaves({"p": {"v": 0.5, "s": "text"}}) == {"p.v": 0.5}
    rows = summary_rows(
        {0: [{"part": "p", "value": 1.0, "note": "a"}], 1: [{"part": "p", "value": 3.0, "note": "b"}]}
    )
    assert rows == [{"part": "p", "value": "2 ± 1.4 (n=2)", "note": "a | b (seeds 0, 1)"}]


@pytest.mark.parametrize("bad", ["0", "x", "1,1", "-1,2", "1,,2", ",1", "99999999999"])
def test_bad_seeds_are_refused_before_any_run(cli, tmp_path, bad):
    code, _, err = cli("run", "vae", "--smoke", "--seeds", bad, "--force", "--out", tmp_path / "out")
    assert code == 2 and "--seeds" in err and not (tmp_path / "out").exists()


def test_resuming_a_seed_summary_is_refused_with_the_command_for_its_seeds(cli, seeded_gan):
    out, _ = seeded_gan
    (summary,) = [p for p in (out / "gan").iterdir() if p.name.endswith("-seeds")]
    before = sorted(p.relative_to(summary) for p in summary.rglob("*"))
    code, _, err = cli("run", "gan", "--resume", summary)
    seeds = sorted(p for p in (out / "gan").iterdir() if p != summary)
    assert code == 2 and "summary of a --seeds run" in err
    assert f"atml run gan --resume {seeds[0]} --resume {seeds[1]}" in err, err
    assert sorted(p.relative_to(summary) for p in summary.rglob("*")) == before
    code, _, err = cli("run", "vae", "--resume", seeds[0])
    assert code == 2 and "a run of 'gan', not 'vae'" in err


def test_run_all_refuses_a_key_no_experiment_has(cli, tmp_path):
    code, _, err = cli("run", "all", "--smoke", "--set", "train.nonsense=1", "--out", tmp_path / "out")
    assert code == 2 and "train.nonsense" in err and not (tmp_path / "out").exists()
    code, _, err = cli("run", "all", "--part", "train", "--out", tmp_path / "out")
    assert code == 2 and "--part" in err


def test_run_all_reports_a_failing_experiment_and_runs_the_others(cli, tmp_path, fake_root, monkeypatch):
    """The study cut to GAN and VAE (the others are slow); the GAN's data is made to go missing."""
    from atml.errors import DataNotFoundError
    from atml.experiments.gan import parts as gan_parts

    monkeypatch.setattr(experiments, "EXPERIMENTS", {k: experiments.EXPERIMENTS[k] for k in ("gan", "vae")})

    def missing(*args):
        raise DataNotFoundError("MNIST went missing")

    monkeypatch.setattr(gan_parts, "prepare", missing)
    code, out, err = cli(
        "run",
        "all",
        "--smoke",
        "--set",
        f"data.root={fake_root}",
        "--set",
        "train.epochs=1",
        "--out",
        tmp_path,
    )
    assert code == 3 and "gan FAILED: MNIST went missing" in err
    assert "1 of 2 experiments done; failed: gan" in out
    (vae_run,) = (tmp_path / "vae").iterdir()
    assert (vae_run / "metrics.json").is_file() and not (tmp_path / "gan").exists()


@pytest.fixture(scope="module")
def seeded_gan(tmp_path_factory, fake_root):
    """`atml run gan --part mode-collapse --seeds 2 --smoke` on fake MNIST."""
    root = fake_root
    out = tmp_path_factory.mktemp("seeded")
    result = subprocess.run(
        [
            *ATML,
            "run",
            "gan",
            "--part",
            "mode-collapse",
            "--seeds",
            "2",
            "--smoke",
            "--set",
            f"data.root={root}",
            "--set",
            "data.download=false",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=isolated(tmp_path_factory),
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_seeds_give_one_folder_per_seed_and_a_summary(seeded_gan):
    out, stdout = seeded_gan
    folders = sorted(p.name for p in (out / "gan").iterdir())
    assert (
        len(folders) == 3
        and folders[0].endswith("seed0")
        and folders[1].endswith("seed1")
        and folders[2].endswith("-seeds")
    )
    summary = json.loads((out / "gan" / folders[2] / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    per_seed = [json.loads((out / "gan" / f / "metrics.json").read_text()) for f in folders[:2]]
    fd = [m["mode-collapse"]["pathology"]["frechet_distance"] for m in per_seed]
    number = summary["numbers"]["mode-collapse.pathology.frechet_distance"]
    assert number["n"] == 2 and number["mean"] == pytest.approx(sum(fd) / 2) and fd[0] != fd[1]
    assert "(n=2)" in stdout and "(n=2)" in (out / "gan" / folders[2] / "summary.md").read_text()


def test_the_report_shows_a_seed_summary_with_its_n(cli, seeded_gan, tmp_path):
    out, _ = seeded_gan
    code, _, err = cli("report", "--outputs", out, "--to", tmp_path)
    assert code == 0, err
    text = (tmp_path / "report.md").read_text()
    assert "seed summary over seeds 0, 1 (n = 2)" in text and "± " in text and "(n=2)" in text
    assert "Not run yet" in text  # the other experiments, named


def test_a_missing_or_broken_run_folder_is_named_in_the_report_and_the_exit_code(cli, seeded_gan, tmp_path):
    out, _ = seeded_gan
    good = next(p for p in (out / "gan").iterdir() if p.name.endswith("seed0"))
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    (broken / "metrics.json").write_text("{ not json")
    missing = tmp_path / "nowhere"
    code, _, err = cli("report", str(good), str(broken), str(missing), "--to", tmp_path / "r")
    assert code == 3 and "nowhere" in err and "metrics.json" in err
    text = (tmp_path / "r" / "report.md").read_text()
    assert "BROKEN run folder" in text and "nowhere" in text and str(broken) in text


def test_a_seed_summary_whose_seed_folder_is_gone_names_it(cli, seeded_gan, tmp_path):
    out, _ = seeded_gan
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    summary_dir = next(p for p in (copy / "gan").iterdir() if p.name.endswith("-seeds"))
    summary = json.loads((summary_dir / "summary.json").read_text())
    summary["runs"] = {seed: str(copy / "gan" / Path(run).name) for seed, run in summary["runs"].items()}
    (summary_dir / "summary.json").write_text(json.dumps(summary))
    gone = copy / "gan" / Path(summary["runs"]["1"]).name
    shutil.rmtree(gone)
    code, _, err = cli("report", str(summary_dir), "--to", tmp_path / "r")
    assert code == 3 and str(gone) in err
    text = (tmp_path / "r" / "report.md").read_text()
    assert "MISSING seed folders" in text and "(n = 2)" in text  # the summary's numbers still shown


@pytest.mark.parametrize(
    "metrics", [{"mode-collapse": 5}, {"mode-collapse": {"pathology": "x"}}, {"nope": {}}]
)
def test_a_metrics_json_of_the_wrong_shape_is_named_by_report_and_resume(cli, seeded_gan, tmp_path, metrics):
    out, _ = seeded_gan
    good = next(p for p in (out / "gan").iterdir() if p.name.endswith("seed0"))
    damaged = tmp_path / "damaged"
    shutil.copytree(good, damaged)
    (damaged / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = cli("report", str(damaged), "--to", tmp_path / "r")
    assert code == 3 and "metrics.json is damaged" in err and "Traceback" not in err
    code, _, err = cli("run", "gan", "--resume", damaged)
    assert code == 3 and "metrics.json is damaged" in err and len(error_lines(err)) == 1


def test_compare_lists_the_differing_config_keys_first(cli, seeded_gan, tmp_path):
    out, _ = seeded_gan
    a, b = sorted(p for p in (out / "gan").iterdir() if "seed" in p.name and not p.name.endswith("-seeds"))
    code, _, err = cli("report", "--compare", str(a), str(b), "--to", tmp_path)
    assert code == 0, err
    text = (tmp_path / "compare.md").read_text()
    first_table = text.split("## Config keys that differ")[1].split("##")[0]
    assert "| seed | 0 | 1 |" in first_table
    assert (
        text.index("Config keys that differ")
        < text.index("Every number that differs")
        < text.index("Figures (columns A, B, left to right)")
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """`atml run all --smoke && atml report`, as a new user would, from the checkout (where
    ../shared/datasets holds MNIST's test split)."""
    folder = tmp_path_factory.mktemp("study")
    env = isolated(tmp_path_factory)
    run = subprocess.run(
        [*ATML, "run", "all", "--smoke", "--out", str(folder / "outputs")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    report = subprocess.run(
        [*ATML, "report", "--outputs", str(folder / "outputs")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    return folder, run, report


@needs_real_data
def test_run_all_smoke_then_report_has_every_section_table_and_figure(study):
    folder, run, report = study
    assert run.returncode == 0, run.stderr[-2000:]
    outputs = sum(f.stat().st_size for f in (folder / "outputs").rglob("*") if f.is_file())
    assert outputs < 300e6, f"run all --smoke left {outputs / 1e6:,.0f} MB"  # checkpoints go with success
    assert report.returncode == 0, report.stderr
    text = (folder / "outputs" / "report" / "report.md").read_text()
    headings = [f"## {i}. {name} — " for i, name in enumerate(experiments.EXPERIMENTS, 1)]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)  # in the order of TASKS
    for section in text.split("\n## ")[1:]:
        assert "### Summary" in section and "| part |" in section or "| run |" in section
        assert "smoke" in section and "1 seed" in section
        assert (
            "### Beside the original report" in section
            and "| figure | original | atml (its own settings) [smoke, " in section
        )
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section)
        assert links and all((folder / "outputs" / "report" / link).is_file() for link in links)
    assert "random weights" in text.split("## 5. clip")[1]
    html = (folder / "outputs" / "report" / "report.html").read_text()
    assert (
        html.count('<img src="data:image/png;base64,') == len(re.findall(r"!\[", text))
        and 'src="file' not in html
    )


@needs_real_data
def test_smoke_numbers_are_the_recorded_ones(study):
    """Behaviour unchanged: every number of `atml run all --smoke` equals the recorded reference
    (tests/smoke_reference.py says when and how to regenerate it)."""
    from tests import smoke_reference

    folder, run, _ = study
    assert run.returncode == 0, run.stderr[-2000:]
    this = smoke_reference.signature()
    recorded = smoke_reference.record_for(this)
    if recorded is None:
        pytest.skip(f"no numbers recorded for this machine's signature {this}")
    now = smoke_reference.smoke_numbers(folder / "outputs")
    for name, numbers in recorded["numbers"].items():
        differ = {k: (v, now[name].get(k)) for k, v in numbers.items() if now[name].get(k) != v}
        keys_now = {k for k in now[name] if not smoke_reference.unrecorded(recorded, k)}
        assert not differ and keys_now == set(numbers), f"{name}: {dict(list(differ.items())[:5])}"


@needs_real_data
def test_every_headline_of_every_experiment_resolves_in_a_smoke_run(study):
    folder, run, _ = study
    assert run.returncode == 0, run.stderr[-2000:]
    for name in experiments.EXPERIMENTS:
        (metrics_file,) = (folder / "outputs" / name).glob("*/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        for headline in experiments.get(name).headlines:
            found = headline.find(metrics) or headline.skip_reason(
                metrics
            )  # a number, or why the run has none
            assert found, f"{name}: headline '{headline.label}' finds no number at {headline.path}"
    assert "UNRESOLVED" not in (folder / "outputs" / "report" / "report.md").read_text()


@needs_real_data
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (CI installs it)")
def test_the_html_report_loads_every_image_in_headless_chromium(study, tmp_path):
    folder, _, report = study
    html = (folder / "outputs" / "report" / "report.html").read_text()
    probe = (
        "<script>window.addEventListener('load', () => { const all = [...document.images];"
        " document.body.setAttribute('data-images', all.filter(i => i.complete && i.naturalWidth > "
        "0).length + '/' + all.length); });"
        "</script></body>"
    )
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe))
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert loaded, result.stderr[-2000:]
    assert int(loaded.group(2)) > 10 and loaded.group(1) == loaded.group(2)


def test_tensorboard_event_files_read_back_the_values_the_run_logged(cli, fake_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, _, err = cli(
        "run",
        "vae",
        "--part",
        "train",
        "--smoke",
        "--set",
        f"data.root={fake_root}",
        "--tracker",
        "tensorboard",
        "--out",
        tmp_path,
    )
    assert code == 0, err
    (folder,) = (tmp_path / "vae").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())["train"]["constant"]
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert events.Scalars("train/constant.recon")[0].value == pytest.approx(metrics["recon"], rel=1e-6)
    history = (folder / "history").glob("*.csv")
    table = next(history)
    rows = table.read_text().strip().splitlines()[1:]
    logged = [c for c in tags["scalars"] if c.startswith(f"history/{table.stem}/")]
    assert logged and len(events.Scalars(logged[0])) == len(rows)
    assert any(t.startswith("plots/") for t in tags["images"]) and "config/text_summary" in tags["tensors"]


def test_tensorboard_on_a_full_disk_is_one_line_exit_5(cli, fake_root, tmp_path, monkeypatch):
    from tensorboard.summary.writer import record_writer

    def full_disk(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record_writer.RecordWriter, "write", full_disk)
    code, _, err = cli(
        "run", "vae", "--part", "train", "--smoke", "--set", f"data.root={fake_root}",
        "--tracker", "tensorboard", "--out", tmp_path,
    )  # fmt: skip
    assert code == 5 and "Traceback" not in err and len(error_lines(err)) == 1
    assert "could not write TensorBoard events" in err and "No space left on device" in err
    assert "--resume" in err


def test_unknown_tracker_is_refused_before_a_run_folder(cli, tmp_path):
    code, _, err = cli("run", "vae", "--smoke", "--tracker", "wandb", "--out", tmp_path / "out")
    assert code == 2 and "tensorboard" in err and not (tmp_path / "out").exists()


def test_a_broken_headline_path_is_named_in_the_report(cli, seeded_gan, tmp_path, monkeypatch):
    from atml.experiments import Headline, gan

    # A headline the result type has, read from a run folder written before the number existed (a
    # headline the type lacks cannot even be declared: see the next test).
    broken = Headline("a number that moved", ("mode-collapse", "pathology", "g_grad_norm_final_epoch"), "0.5")
    run_folder = next(p for p in (seeded_gan[0] / "gan").iterdir() if p.name.endswith("seed0"))
    old = tmp_path / "old-run"
    shutil.copytree(run_folder, old)
    metrics = json.loads((old / "metrics.json").read_text())
    del metrics["mode-collapse"]["pathology"]["g_grad_norm_final_epoch"]
    (old / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setattr(gan, "EXPERIMENT", dataclasses.replace(gan.EXPERIMENT, headlines=(broken,)))
    code, _, err = cli("report", str(old), "--to", tmp_path / "report")
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    assert "a number that moved" in text
    assert "UNRESOLVED: no number at mode-collapse → pathology → g_grad_norm_final_epoch" in text


def test_an_experiment_missing_a_piece_fails_when_it_is_built():
    from atml.experiments import Experiment, Headline, gan

    e = gan.EXPERIMENT
    with pytest.raises(TypeError, match="parts must be a non-empty tuple of Part"):
        dataclasses.replace(e, parts=())
    with pytest.raises(TypeError, match="does not start with a part"):
        dataclasses.replace(e, headlines=(Headline("x", ("no-such-part", "v"), "1"),))
    with pytest.raises(TypeError, match="summary and needs must be callable"):
        dataclasses.replace(e, parts=(dataclasses.replace(e.parts[0], summary=None), *e.parts[1:]))
    with pytest.raises(TypeError, match="no key 'no_such_number' at pathology"):
        dataclasses.replace(e, headlines=(Headline("x", ("vanishing", "pathology", "no_such_number"), "1"),))
    with pytest.raises(TypeError, match="is not a number"):
        dataclasses.replace(e, headlines=(Headline("x", ("vanishing", "data"), "1"),))
    with pytest.raises(TypeError, match="not a Result type"):
        dataclasses.replace(e, parts=(dataclasses.replace(e.parts[0], result=dict), *e.parts[1:]))
    with pytest.raises(TypeError, match="two parts share a name"):
        dataclasses.replace(e, parts=(e.parts[0], e.parts[0]))
    with pytest.raises(TypeError, match="two figures share a name"):
        twin = dataclasses.replace(e.parts[1], figures=e.parts[0].figures)
        dataclasses.replace(e, parts=(e.parts[0], twin))
    assert isinstance(e, Experiment)


def test_an_experiment_whose_code_lacks_a_runner_fails_at_first_use(monkeypatch):
    from atml.experiments import gan
    from atml.experiments.gan import parts as gan_parts

    monkeypatch.delattr(gan_parts, "prepare_runs")
    with pytest.raises(TypeError, match="the preparation of baseline, prepare_runs, is missing"):
        dataclasses.replace(gan.EXPERIMENT).runner("baseline")
    monkeypatch.setattr(gan_parts, "prepare", None)
    with pytest.raises(TypeError, match="prepare is missing"):
        dataclasses.replace(gan.EXPERIMENT).runner("baseline")


def test_a_part_that_returns_an_untyped_dict_is_refused(monkeypatch):
    from atml.experiments import gan
    from atml.experiments.gan import parts as gan_parts

    untyped = dataclasses.replace(gan.EXPERIMENT)
    monkeypatch.setattr(gan_parts, "run_part", lambda part, ctxs, runs: [{"x": 1.0}])
    with pytest.raises(TypeError, match="returned dict, not GanPartResult"):
        untyped.run_part("baseline", [None], [None])
    monkeypatch.setattr(gan_parts, "run_part", lambda part, ctxs, runs: {"x": 1.0})
    with pytest.raises(TypeError, match="returned dict, not 1 results"):
        untyped.run_part("baseline", [None], [None])
