"""How atml's number compares with the original's, by one rule the report states once (RULE).
The original's number is the leading number of its headline's `original` text; text that starts
otherwise ("—", "notebook …" qualifiers after a dash) has nothing to compare with."""

from __future__ import annotations

import re
from dataclasses import dataclass

SPREAD = 2.0  # a seed summary agrees when the original lies within mean ± SPREAD sample std
RELATIVE, ABSOLUTE = 0.05, 0.01  # otherwise within max(5 % of the original, 0.01)
# column marks whose numbers are not of the original's kind
NOT_COMPARABLE = ("smoke", "random weights", "incomplete")
RULE = (
    f"How atml's number compares (the 'vs original' columns): 'within the seeds' spread' when the "
    f"original's number lies within atml's mean ± {SPREAD:g} sample std over at least 2 seeds; else "
    f"'within tolerance' when they differ by at most {RELATIVE:.0%} of the original's number (at least "
    f"{ABSOLUTE:g}); else 'differs' with the difference (atml − original). 'not comparable' for a "
    f"column from {', '.join(NOT_COMPARABLE)} settings; '—' where the original has no number."
)
_LEADING = re.compile(r"^\s*(-?\d[\d,]*(?:\.\d+)?)")


def original_number(text: str) -> float | None:
    found = _LEADING.match(text)
    return float(found.group(1).replace(",", "")) if found else None


@dataclass(frozen=True)
class Verdict:
    kind: str  # spread | tolerance | differs | not comparable | none
    text: str


def verdict(original: str, number: tuple[float, float, int] | None, marks: list[str]) -> Verdict:
    """`number`: atml's (mean, sample std, n seeds), None where the run has none."""
    target = original_number(original)
    if target is None or number is None:
        return Verdict("none", "—")
    unlike = [m for m in marks if m in NOT_COMPARABLE]
    if unlike:
        return Verdict("not comparable", f"not comparable ({', '.join(unlike)})")
    mean, std, n = number
    if n >= 2 and abs(mean - target) <= SPREAD * std:
        return Verdict("spread", "within the seeds' spread")
    if abs(mean - target) <= max(RELATIVE * abs(target), ABSOLUTE):
        return Verdict("tolerance", "within tolerance")
    return Verdict("differs", f"differs ({mean - target:+.3g})")


def readout(label: str, judged: list[tuple[str, Verdict]]) -> str | None:
    """One sentence per column from its verdicts: how many of the original's numbers it reproduced."""
    compared = [(h, v) for h, v in judged if v.kind in ("spread", "tolerance", "differs")]
    unlike = [v for _, v in judged if v.kind == "not comparable"]
    if not compared:
        return f"{label}: {len(unlike)} number(s) not comparable with the original's." if unlike else None
    count = {k: sum(v.kind == k for _, v in compared) for k in ("spread", "tolerance", "differs")}
    said = (
        f"{label}: of the {len(compared)} numbers the original reports, {count['spread']} lie within the "
        f"seeds' spread, {count['tolerance']} within tolerance and {count['differs']} differ"
    )
    differing = [f"{h} {v.text.removeprefix('differs ')}" for h, v in compared if v.kind == "differs"]
    return said + (f": {'; '.join(differing)}." if differing else ".")
