"""Every headline quotes the original write-up exactly, or says where else its number comes from
(the notebook, a published paper) or that the original measured none ("—")."""

import re

import pytest

from atml import experiments
from tests.conftest import REPO

WRITE_UP = REPO.parent / "shared" / "seeds" / "pa0_report.txt"
ELSEWHERE = ("notebook", "published", "Liang et al.")


@pytest.mark.skipif(not WRITE_UP.is_file(), reason=f"the original write-up is not at {WRITE_UP}")
@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_headline_quotes_the_write_up_or_names_its_source(name):
    text = WRITE_UP.read_text()
    for headline in experiments.get(name).headlines:
        original = headline.original
        assert original.startswith("—") or re.match(r"[≈~-]? ?\d", original), original
        for number in re.finditer(r"\d+\.\d+", original):
            said_elsewhere = any(source in original[: number.start()] for source in ELSEWHERE)
            as_percent = f"{float(number.group()) * 100:g}%"
            assert said_elsewhere or number.group() in text or as_percent in text, (
                f"{name}: '{headline.label}' quotes {number.group()}, which the write-up does not say; "
                "mark where it comes from (notebook, published)"
            )
