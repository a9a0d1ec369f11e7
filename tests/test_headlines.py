"""Every headline quotes the original write-up exactly, in the sentence it comes from, or says
where else its number comes from (the notebook, a published paper) or that the original measured
none ("—"). Each quote is checked in its own context: a number is not passed because the same
digits occur elsewhere in the write-up."""

import re

import pytest

from atml import experiments
from tests.conftest import REPO

WRITE_UP = REPO.parent / "shared" / "seeds" / "pa0_report.txt"
ELSEWHERE = ("notebook", "published", "Liang et al.")

# (experiment, headline label) → the write-up's words its number comes from
CONTEXT = {
    (
        "resnet",
        "baseline: frozen backbone + head, val accuracy",
    ): "reached a validation accuracy of about 83%",
    ("resnet", "no-residual: head only, val accuracy"): "validation accuracy collapsed to roughly 22%",
    ("resnet", "transfer: last block, val accuracy"): "final block gave a validation accuracy of around 72%",
    ("vit", "probe: class token, held-out accuracy"): "CLS token pooling accuracy 0.9630",
    ("vit", "probe: mean of patch tokens, held-out accuracy"): "mean pooling 0.9259",
    ("gan", "vanishing, pathology: final D(x)"): r"$D(\text{real}) \approx 1.0$",
    ("gan", "vanishing, pathology: final D(G(z))"): r"$D(\text{fake}) \approx 1.0$",
    ("gan", "vanishing, pathology: final G loss (an epoch's mean)"): "Generator loss stalled around -100.0",
    ("gan", "mode-collapse, pathology: pixel variance"): "variance = 0.000000",
    ("gan", "mode-collapse, mitigation: pixel variance"): "variance went back up (0.260795)",
    ("gan", "mode-collapse, pathology: mean pairwise distance"): "mean distance = 0.0000",
    ("gan", "mode-collapse, mitigation: mean pairwise distance"): "and mean distance 20.1521",
    ("gan", "d-overfit, pathology: final D(x)"): r"memorized training set. $D(\text{real}) = 0.9453$",
    ("gan", "d-overfit, pathology: mean D(held-out real)"): r"mean $D(\text{real_test}) = 0.985$",
    ("gan", "d-overfit, mitigation: mean D(held-out real)"): "lowered mean test score to 0.932",
    ("gan", "d-overfit, pathology: held-out reals with D > 0.5"): "test accuracy = 1.000",
    ("vae", "constant β: train reconstruction (per image)"): r"($32.0 \rightarrow 14.1$)",
    ("vae", "constant β: train KL (per image)"): r"($5.8 \rightarrow 8.1$)",
    ("vae", "constant β: collapse ratio"): "collapse ratio = 0.705",
    ("vae", "β-annealing (atml: linear; --preset original: delayed-linear): collapse ratio"): (
        "collapse ratio = 0.505 (vs 0.705)"
    ),
    ("clip", "zero-shot: plain label"): "Plain labels accuracy = 0.9389",
    ("clip", "zero-shot: one template"): "Simple prompts accuracy = 0.9485",
    ("clip", "zero-shot: descriptive"): "Descriptive prompts accuracy = 0.9483",
    ("clip", "cosine, matched pairs"): "Diagonal similarity (correct pairs) = 0.2791",
    ("clip", "cosine, unmatched pairs"): "Off-diagonal = 0.2175",
    ("clip", "Procrustes, held out: matched cosine after"): "before = 0.2791, after = 0.8903",
    ("clip", "Procrustes, held out: accuracy after"): "aligned = 1.0000",
    ("clip", "Procrustes, fit split: matched cosine after"): "before = 0.2791, after = 0.8903",
    ("clip", "Procrustes, fit split: accuracy after"): "aligned = 1.0000",
}


def write_up_numbers(original: str) -> list[str]:
    """The numbers of a headline's original that it says are the write-up's: those not after a
    word naming another source."""
    return [
        number.group()
        for number in re.finditer(r"-?\d+\.\d+", original)
        if not any(source in original[: number.start()] for source in ELSEWHERE)
    ]


def quote_problem(name: str, label: str, original: str, text: str) -> str | None:
    """Why a headline's original number is not the write-up's in its own context, or None."""
    if not (original.startswith("—") or re.match(r"[≈~-]? ?\d", original)):
        return f"{name}: '{label}': '{original}' starts with neither a number nor —"
    numbers = write_up_numbers(original)
    if not numbers:
        return None
    context = CONTEXT.get((name, label))
    if context is None:
        return (
            f"{name}: '{label}' quotes {numbers} as the write-up's; name the words they come from in "
            "CONTEXT, or mark where else they come from (notebook, published)"
        )
    if context not in text:
        return f"{name}: '{label}': the write-up does not say '{context}'"
    for number in numbers:
        if number not in context and f"{float(number) * 100:g}%" not in context:
            return f"{name}: '{label}' quotes {number}, which '{context}' does not say"
    return None


needs_write_up = pytest.mark.skipif(
    not WRITE_UP.is_file(), reason=f"the original write-up is not at {WRITE_UP}"
)


@needs_write_up
@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_headline_quotes_the_write_up_in_its_context_or_names_its_source(name):
    text = " ".join(WRITE_UP.read_text().split())
    for headline in experiments.get(name).headlines:
        assert quote_problem(name, headline.label, headline.original, text) is None


@needs_write_up
def test_digits_the_write_up_says_of_something_else_do_not_pass():
    """The write-up gives held-out accuracy 1.000 for the overfit D only; the regularised D's
    1.000 is its notebook's."""
    text = " ".join(WRITE_UP.read_text().split())
    label = "d-overfit, mitigation: held-out reals with D > 0.5"
    assert "1.000" in text and quote_problem("gan", label, "1.000", text) is not None
    assert quote_problem("gan", label, "— (notebook 1.000)", text) is None
