"""The report against the original: every result-affecting setting that differs from the
experiment's `original` preset is named by key, and a run with --preset original sits beside a
run with atml's own settings, each in its own column."""

import json
import sys

import pytest
import yaml

from atml.config import resolve
from atml.data.fake import write_fake_idx_dataset
from atml.experiments import clip, gan, resnet, vae, vit
from atml.report.original import differences
from atml.tables import number


def _resolved(experiment, schema, **kwargs) -> dict:
    raw, _ = resolve(experiment, schema, **kwargs)
    return raw


@pytest.mark.parametrize(
    "experiment, schema",
    [
        ("gan", gan.Config),
        ("vae", vae.Config),
        ("resnet", resnet.Config),
        ("vit", vit.Config),
        ("clip", clip.Config),
    ],
)
def test_the_original_preset_differs_in_nothing(experiment, schema):
    config = _resolved(experiment, schema, preset="original", sets=["data.root=/elsewhere", "seed=3"])
    assert differences(experiment, config) == []  # paths and the seed are no result setting


def test_a_set_key_is_named_with_both_values_and_a_log_setting_is_not():
    config = _resolved("gan", gan.Config, preset="original", sets=["train.lr_g=0.001", "train.log_every=3"])
    assert [str(d) for d in differences("gan", config)] == ["train.lr_g = 0.001 (original: 0.0002)"]


def test_atml_defaults_name_what_makes_them_other_than_the_original():
    shown = {d.key: str(d) for d in differences("vae", _resolved("vae", vae.Config))}
    assert shown["train.epochs"] == "train.epochs = 10 (original: 100)"
    assert "eval.validation" in shown and "anneal_schedules" in shown
    gan_shown = {d.key: str(d) for d in differences("gan", _resolved("gan", gan.Config))}
    assert gan_shown["train.loss"] == "train.loss = logits (original: sigmoid-bce)"
    assert gan_shown["parts.baseline.tuned"].endswith("(original: null)")  # a run the original lacks


def test_resnet_vit_and_clip_defaults_name_what_makes_them_other_than_the_original():
    shown = {d.key: str(d) for d in differences("resnet", _resolved("resnet", resnet.Config))}
    assert shown["train.backbone_bn"] == "train.backbone_bn = eval (original: train)"
    assert "no_residual.start" in shown and "features.pca_before_tsne" in shown
    assert shown["transfer.lr.scratch"] == "transfer.lr.scratch = 0.001 (original: 0.01)"
    assert "transfer.settings" not in shown
    assert "no_residual.blocks" not in shown  # atml's default blocks are the original's now
    shown = {d.key for d in differences("vit", _resolved("vit", vit.Config))}
    assert {"model.name", "masking.centre", "masking.source", "probe.split", "probe.standardise"} <= shown
    assert "model.cache" not in shown  # declared: changes no result
    shown = {d.key for d in differences("clip", _resolved("clip", clip.Config))}
    assert {
        "model.normalise",
        "zeroshot.renormalise_ensemble",
        "procrustes.scoring",
        "data.pair_indices",
    } <= shown


def test_an_experiment_without_an_original_preset_is_not_compared(tmp_path, monkeypatch):
    from tests.conftest import copy_shipped_configs

    copy_shipped_configs(tmp_path / "configs")
    (tmp_path / "configs" / "clip" / "original.yaml").unlink()
    monkeypatch.setenv("ATML_CONFIG_DIR", str(tmp_path / "configs"))
    from atml.report import original

    original._original.cache_clear()  # read per process: an earlier test may have read clip's
    try:
        assert differences("clip", _resolved("clip", clip.Config)) is None
    finally:
        original._original.cache_clear()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """`atml run gan --preset original --smoke` (every part) and d-overfit with atml's settings,
    on fake data holding the original's index ranges (held-out: file indices 8000–8999)."""
    from atml.cli import main

    root = tmp_path_factory.mktemp("data")
    write_fake_idx_dataset("mnist", root, n_train=300, n_test=9000)
    out = tmp_path_factory.mktemp("outputs")
    common = ["--smoke", "--set", f"data.root={root}", "--out", str(out)]
    argv = sys.argv
    try:
        for args in (["--preset", "original", "--set", "train.lr_g=0.001"], ["--part", "d-overfit"]):
            sys.argv = ["atml", "run", "gan", *args, *common]
            main()
    finally:
        sys.argv = argv
    return out


def test_the_report_has_a_column_for_the_original_preset_and_for_atmls_settings(cli, two_runs):
    code, _, err = cli("report", "--outputs", two_runs)
    assert code == 0, err
    text = (two_runs / "report" / "report.md").read_text()
    section = text.split("## 3. gan")[1]
    header = next(line for line in section.splitlines() if line.startswith("| figure |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[:2] == ["figure", "original"]
    assert cells[2].startswith("atml --preset original [smoke,") and cells[4].startswith(
        "atml (its own settings)"
    )
    assert (
        cells[3] == "atml --preset original vs original" and cells[5] == "atml (its own settings) vs original"
    )
    row = next(line for line in section.splitlines() if line.startswith("| d-overfit, pathology: final D(x)"))
    assert "0.9453" in row and len(row.strip("|").split("|")) == 6
    assert row.strip("|").split("|")[3].strip() == "not comparable (smoke)"  # smoke numbers are not judged
    row = next(line for line in section.splitlines() if line.startswith("| mode-collapse, pathology: pixel"))
    assert row.strip("|").split("|")[4].strip() == "— (part not run)"  # the default run had d-overfit only
    marks = next(line for line in section.splitlines() if line.startswith("**atml --preset original:"))
    assert "settings that differ from the original (listed below)" in marks
    listed = section.split("settings that differ from --preset original (")[1].split("</details>")[0]
    assert "| train.lr_g | 0.001 | 0.0002 |" in listed and "data.root" not in listed


def test_compare_sets_an_original_preset_run_beside_a_default_run(cli, two_runs, tmp_path):
    a, b = sorted((two_runs / "gan").iterdir())
    code, _, err = cli("report", "--compare", a, b, "--to", tmp_path)
    assert code == 0, err
    text = (tmp_path / "compare.md").read_text()
    assert "A (atml --preset original)" in text and "B (atml (its own settings))" in text
    config_rows = text.split("## Config keys that differ")[1].split("##")[0]
    assert "| train.loss | sigmoid-bce | logits |" in config_rows
    assert yaml.safe_load((a / "config.yaml").read_text())["seed"] == 42


def test_two_folders_of_one_kind_get_a_column_each(cli, two_runs, tmp_path):
    import shutil

    original = next(
        f
        for f in (two_runs / "gan").iterdir()
        if yaml.safe_load((f / "config.yaml").read_text())["seed"] == 42
    )
    again = tmp_path / "again"
    shutil.copytree(original, again)
    code, _, err = cli("report", original, again, "--to", tmp_path / "r")
    assert code == 0, err
    header = next(
        line
        for line in (tmp_path / "r" / "report.md").read_text().splitlines()
        if line.startswith("| figure |")
    )
    assert (
        f"atml --preset original ({original.name})" in header and "atml --preset original (again)" in header
    )


def test_the_report_opens_with_contents_linking_every_section(tmp_path):
    from atml.report.document import Contents, Heading, Paragraph, to_html, to_markdown

    blocks = [Heading("atml report", 1), Contents(), Heading("1. gan — an MLP GAN"), Paragraph("x")]
    text = to_markdown(blocks, tmp_path)
    assert "- [1. gan — an MLP GAN](#1-gan--an-mlp-gan)" in text
    page = to_html(blocks, "r")
    assert "<a href='#1-gan--an-mlp-gan'>" in page and "<h2 id='1-gan--an-mlp-gan'>" in page


def test_the_read_out_is_filled_from_each_runs_numbers(cli, two_runs):
    code, _, err = cli("report", "--outputs", two_runs)
    assert code == 0, err
    section = (two_runs / "report" / "report.md").read_text().split("## 3. gan")[1].split("\n## ")[0]
    runs = [json.loads(f.read_text()) for f in (two_runs / "gan").glob("*/metrics.json")]
    metrics = next(m for m in runs if "baseline" not in m)["d-overfit"]  # the run of d-overfit alone
    said = section.split("### What the numbers say — atml (its own settings)")[1].split("###")[0]
    auc = f"ROC AUC {number(metrics['pathology']['d_membership_auc'])} (0.5: it cannot)"
    assert auc in said and "Baseline:" not in said  # a sentence about a part the run lacks is left out
    preset = section.split("### What the numbers say — atml --preset original")[1].split("###")[0]
    assert "Baseline:" in preset and "Mode collapse:" in preset


def test_a_reading_of_a_number_no_result_has_fails_when_the_experiment_is_built():
    from dataclasses import replace

    from atml import experiments

    gan = experiments.get("gan")
    with pytest.raises(TypeError, match=r"reading \{d-overfit/pathology/no_such_number\}"):
        replace(gan, readings=(experiments.Reading("{d-overfit/pathology/no_such_number}"),))
    assert experiments.Reading("{a/b} and {c}").fill({("a", "b"): 1.5, ("c",): 2.0}.get) == "1.5 and 2"
    assert experiments.Reading("{a/b} and {c}").fill({("a", "b"): 1.5}.get) is None
