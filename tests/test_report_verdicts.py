"""The report's 'vs original' column and read-out sentence, by the rule it states once, and the
training figures' axes (integer epochs; a row shares its y range only where the runs' scales match)."""

import matplotlib.pyplot as plt
import pytest

from atml import plots
from atml.report.verdicts import original_number, readout, verdict


@pytest.mark.parametrize(
    "text, number",
    [("0.9630 (88 images, 27 tested)", 0.963), ("8,332", 8332.0), ("-100.0 ('stalled')", -100.0),
     ("— (notebook 0.2991)", None), ("— (not measured)", None)],
)  # fmt: skip
def test_the_originals_number_is_its_leading_number_only(text, number):
    assert original_number(text) == number


def test_each_verdict_by_the_stated_rule():
    assert verdict("0.705", (0.69, 0.01, 3), []).kind == "spread"  # 0.705 within 0.69 ± 2·0.01
    assert verdict("0.705", (0.69, 0.001, 3), []).kind == "tolerance"  # 0.015 ≤ 5 % of 0.705
    assert verdict("0.705", (0.69, 0.0, 1), []).kind == "tolerance"  # one seed: no spread, tolerance only
    differs = verdict("0.705", (0.5376, 0.021, 2), ["1 setting differs"])
    assert differs.kind == "differs" and differs.text == "differs (-0.167)"
    assert verdict("0.01", (0.015, 0.0, 1), []).kind == "tolerance"  # the absolute floor, 0.01
    assert verdict("0.9389", (0.07, 0.0, 1), ["smoke", "1 seed"]).text == "not comparable (smoke)"
    assert verdict("— (notebook 0.2991)", (0.3, 0.0, 1), []).text == "—"
    assert verdict("0.9389", None, []).text == "—"


def test_the_readout_counts_and_names_what_differs():
    said = readout(
        "atml",
        [("a", verdict("1.0", (1.0, 0.0, 2), [])), ("b", verdict("0.5", (0.9, 0.01, 2), [])),
         ("c", verdict("—", (0.1, 0.0, 1), []))],
    )  # fmt: skip
    assert said == (
        "atml: of the 2 numbers the original reports, 1 lie within the seeds' spread, 0 within "
        "tolerance and 1 differ: b (+0.4)."
    )


def curves(tmp_path, scales, epochs=(1, 2)):
    rows = lambda scale: [{"epoch": e, "loss": scale * (3 - e)} for e in epochs]  # noqa: E731
    runs = {name: {"epochs": rows(scale)} for name, scale in scales.items()}
    panels = [plots.Panel("loss", [plots.Series("loss", "loss", "epochs")])]
    captured = {}
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["axes"] = fig.axes
        return original(fig, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt.Figure, "savefig", keep)
        assert plots.training_curves(runs, panels, "t").startswith(b"\x89PNG")
    return captured["axes"]


def test_a_row_shares_its_y_range_only_where_the_scales_match(tmp_path):
    alike = curves(tmp_path, {"a": 1.0, "b": 2.0})
    assert alike[0].get_ylim() == alike[1].get_ylim()
    apart = curves(tmp_path, {"a": 1.0, "b": 4703.0})
    assert apart[0].get_ylim()[1] < 10 < apart[1].get_ylim()[1]


def test_epoch_ticks_are_integers(tmp_path):
    (ax, _) = curves(tmp_path, {"a": 1.0, "b": 1.0})
    assert all(float(t).is_integer() for t in ax.get_xticks())
    (ax, _) = curves(tmp_path, {"a": 1.0, "b": 1.0}, epochs=(1,))  # one epoch: one tick, at 1
    shown = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert shown == [1]


def test_repeated_headings_get_unique_html_ids():
    import re

    from atml.report.document import Contents, Heading, to_html

    page = to_html(
        [Contents(), Heading("1. a", 2), Heading("Summary", 3), Heading("2. b", 2), Heading("Summary", 3)],
        "t",
    )
    assert re.findall(r"id='([^']+)'", page) == ["1-a", "summary", "2-b", "summary-1"]
    assert re.findall(r"href='([^']+)'", page) == ["#1-a", "#2-b"]
