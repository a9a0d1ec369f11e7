from pathlib import Path

import pytest

from atml.config import deep_merge, resolve, split_set
from atml.errors import UserError
from atml.experiments import gan


def test_deep_merge_keeps_siblings_and_does_not_mutate():
    base = {"train": {"epochs": 20, "lr_g": 2e-4}, "seed": 0}
    merged = deep_merge(base, {"train": {"epochs": 3}})
    assert merged == {"train": {"epochs": 3, "lr_g": 2e-4}, "seed": 0}
    assert base["train"]["epochs"] == 20


def test_split_set_reads_yaml_values():
    assert split_set("train.epochs=5") == ("train.epochs", 5)
    assert split_set("model.g_hidden=[8, 16]") == ("model.g_hidden", [8, 16])
    assert split_set("train.g_loss=saturating") == ("train.g_loss", "saturating")


@pytest.mark.parametrize(
    "text, number", [("1e-3", 0.001), ("5E4", 50000.0), ("-2e+2", -200.0), (".5e3", 500.0)]
)
def test_numbers_in_exponent_notation_are_numbers_as_yaml_1_2_reads_them(text, number):
    """PyYAML reads YAML 1.1, where 1e-3 is a string: a config.yaml would hold '1e-3' for a float."""
    assert split_set(f"train.lr_g={text}") == ("train.lr_g", number)
    assert split_set(f"x=[{text}, e5]")[1] == [number, "e5"]


def test_a_set_in_exponent_notation_is_written_to_the_config_as_a_float():
    merged, cfg = resolve("gan", gan.Config, sets=["train.lr_g=1e-3"])
    assert merged["train"]["lr_g"] == cfg.train.lr_g == 0.001 and isinstance(merged["train"]["lr_g"], float)


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "train..epochs=3"])
def test_split_set_rejects_malformed(bad):
    with pytest.raises(UserError, match="key=value"):
        split_set(bad)


def test_layers_apply_in_order(tmp_path):
    file = tmp_path / "mine.yaml"
    file.write_text("train:\n  epochs: 7\n  lr_d: 1.0e-3\n")
    raw, cfg = resolve(
        "gan", gan.Config, config_file=file, smoke=True, flags={"seed": 5}, sets=["train.epochs=9"]
    )
    assert cfg.train.epochs == 9  # --set beats --config beats smoke
    assert cfg.train.lr_d == 1e-3
    assert cfg.seed == 5
    assert cfg.data.train_subset == 512  # from the smoke layer
    assert raw["train"]["epochs"] == 9


def test_mitigation_inherits_pathology_and_adds_its_fix():
    _, cfg = resolve("gan", gan.Config)
    pathology, mitigation = cfg.runs["vanishing"]["pathology"], cfg.runs["vanishing"]["mitigation"]
    assert pathology.train.g_loss == "saturating" and mitigation.train.g_loss == "non_saturating"
    assert pathology.train.lr_d == mitigation.train.lr_d == 5 * cfg.train.lr_d
    assert mitigation.train.real_label == 0.9 and pathology.train.real_label == 1.0
    rebalanced = cfg.runs["vanishing"]["rebalanced"]  # same strong D's lr, one D step per G step
    assert rebalanced.train.lr_d == pathology.train.lr_d and (
        pathology.train.d_steps,
        rebalanced.train.d_steps,
    ) == (5, 1)
    overfit = cfg.runs["d-overfit"]
    assert (
        overfit["mitigation"].model.d_hidden == [64]
        and overfit["mitigation"].data == overfit["pathology"].data
    )
    assert (
        overfit["dropout"].model.d_hidden == overfit["pathology"].model.d_hidden
        and overfit["dropout"].model.d_dropout == 0.4
    )


def test_every_part_has_runs():
    _, cfg = resolve("gan", gan.Config)
    assert set(cfg.runs) == set(gan.PARTS)
    assert list(cfg.runs["vanishing"]) == ["pathology", "mitigation", "rebalanced"]
    assert list(cfg.runs["mode-collapse"]) == ["pathology", "mitigation"]
    assert list(cfg.runs["d-overfit"]) == ["pathology", "mitigation", "dropout"]
    assignment, tuned = cfg.runs["baseline"]["assignment"], cfg.runs["baseline"]["tuned"]
    assert assignment.train.lr_g == assignment.train.lr_d == 2e-4 and assignment.train.epochs == 20
    assert tuned.train.lr_g == 2e-3 and tuned.model == assignment.model


@pytest.mark.parametrize(
    "assignment, message",
    [
        (
            "train.lr_x=1",
            "unknown config key 'train.lr_x' (did you mean 'train.lr_g'?); accepted under 'train'",
        ),
        ("nonsense=1", "unknown config key 'nonsense'; accepted: seed, data"),
        ("train.lr_g=abc", "bad config value 'train.lr_g'"),
        ("train.g_loss=wasserstein", "bad config value 'train.g_loss'"),
        ("data.train_split=val", "bad config value 'data.train_split'"),
        ("parts.vanishing.pathology.train.d_steps=0", "parts.vanishing.pathology.train.d_steps"),
        (
            "parts.vanishing.pathology.model.width=3",
            "unknown config key 'parts.vanishing.pathology.model.width'",
        ),
        ("parts.nopart.x={}", "unknown part 'nopart'"),
    ],
)
def test_bad_keys_and_values_name_the_problem(assignment, message):
    with pytest.raises(UserError) as info:
        resolve("gan", gan.Config, sets=[assignment])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        resolve("gan", gan.Config, config_file=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        resolve("gan", gan.Config, config_file=broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        resolve("gan", gan.Config, config_file=listy)


def test_shipped_configs_parse():
    for path in Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"):
        assert path.read_text().strip(), path


def test_the_shipped_defaults_list_every_setting():
    """`atml config EXP` prints the merged YAML, so every key a schema has must be in its file."""
    from atml import experiments
    from atml.config import config_dir, read_yaml

    def keys(tree, prefix=""):
        if isinstance(tree, dict) and tree:
            for k, v in tree.items():
                yield from keys(v, f"{prefix}.{k}" if prefix else k)
        else:
            yield prefix

    for name in experiments.EXPERIMENTS:
        raw = read_yaml(config_dir(name) / "default.yaml")
        full = experiments.get(name).config.model_validate(raw).model_dump(mode="json")
        missing = {k for k in keys(full) if not k.startswith("parts.")} - set(keys(raw))
        assert not missing, f"{name}'s configs/default.yaml lacks {sorted(missing)}"


def test_set_replaces_a_mapping_or_list_whole():
    from atml.experiments import clip

    raw, _ = resolve("clip", clip.Config, sets=["zeroshot.strategies={mine: ['a {}']}"])
    assert raw["zeroshot"]["strategies"] == {"mine": ["a {}"]}  # the defaults are gone, not merged
    raw, _ = resolve("clip", clip.Config, sets=["zeroshot.class_names={}"])
    assert raw["zeroshot"]["class_names"] == {}
    raw, _ = resolve("gan", gan.Config, sets=["train.epochs=3", "train={epochs: 4}"])
    assert raw["train"] == {"epochs": 4}  # a later --set of the section replaces it too
