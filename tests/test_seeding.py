"""Seeding in one place: a part gives the same numbers alone as after other parts in one run."""

import json

import pytest

from atml.seed_summary import numeric_leaves

TIMES = ("time_s", "wall_s", "seconds")


def part_numbers(out, experiment: str, part: str) -> dict[str, float]:
    (metrics_file,) = (out / experiment).glob("*/metrics.json")
    leaves = numeric_leaves(json.loads(metrics_file.read_text())[part])
    return {k: v for k, v in leaves.items() if not k.endswith(TIMES)}


@pytest.mark.parametrize(
    "experiment, before, part",
    [("gan", "baseline", "d-overfit"), ("vae", "samples", "collapse")],
)
def test_a_part_alone_gives_the_numbers_it_gives_after_another_part(
    cli, fake_root, tmp_path, experiment, before, part
):
    common = ["--smoke", "--set", f"data.root={fake_root}", "--set", "train.epochs=1"]
    code, _, err = cli("run", experiment, *common, "--part", part, "--out", tmp_path / "alone")
    assert code == 0, err
    code, _, err = cli(
        "run", experiment, *common, "--part", before, "--part", part, "--out", tmp_path / "both"
    )
    assert code == 0, err
    alone, both = (
        part_numbers(tmp_path / "alone", experiment, part),
        part_numbers(tmp_path / "both", experiment, part),
    )
    assert alone and alone == both
