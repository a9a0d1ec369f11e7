"""The seed policy (atml.seeding): streams by purpose; a part gives the same numbers alone as after
other parts in one run. (Every in-process command also checks that the global streams do not move:
the `cli` fixture.)"""

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


def test_each_purpose_has_a_stream_of_its_own_fixed_by_seed_and_name():
    import torch

    from atml.seeding import PURPOSES, Seeds

    values = {purpose: Seeds(7).value(purpose) for purpose in PURPOSES}
    assert len(set(values.values())) == len(PURPOSES)  # no two purposes share a stream
    assert values == {purpose: Seeds(7).value(purpose) for purpose in PURPOSES}  # the same every time
    assert Seeds(8).value("init") != values["init"] and Seeds(2**32 + 7).value("init") != values["init"]
    first = torch.randn(4, generator=Seeds(7).generator("batches"))
    assert torch.equal(first, torch.randn(4, generator=Seeds(7).generator("batches")))
    assert not torch.equal(first, torch.randn(4, generator=Seeds(7).generator("training")))
    with pytest.raises(ValueError, match="unknown seed purpose 'batch'"):
        Seeds(7).value("batch")


def test_initialising_draws_from_the_init_stream_and_leaves_the_global_one_alone():
    import torch

    from atml.seeding import Seeds

    state = torch.get_rng_state()
    with Seeds(3).initialising():
        a = torch.nn.Linear(4, 4).weight.detach().clone()
    with Seeds(3).initialising():
        b = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
