"""β schedules for the VAE's KL weight, as a function of the optimisation step.

atml's own (per step): `constant`, `linear` (a warm-up ramp, then held) and `cyclical` (Fu et al.
2019: M cycles, each rising over its first R share, then held). The original notebook's (per
epoch, ORIGINAL_SETTINGS.md §4.5–4.6): `delayed-linear` (β = 0 for `delay_epochs` epochs, then
beta·(e − delay)/ramp, capped at beta: with 100 epochs, 50 and 50 it ends at 0.98, never 1) and
`decreasing-cosine` (each cycle of `cycle_epochs` starts at beta and decays as
beta·½(1 + cos(π·p)), p = (e mod cycle)/cycle: a cosine decay repeated, not a 0 → 1 ramp).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from atml.config import Strict

SCHEDULES = ("constant", "linear", "cyclical", "delayed-linear", "decreasing-cosine")
Schedule = Literal["constant", "linear", "cyclical", "delayed-linear", "decreasing-cosine"]


class BetaSchedule(Strict):
    kind: Schedule = "constant"
    beta: float = Field(1.0, ge=0, le=1e6, description="the β the schedule reaches (and holds)")
    warmup_share: float = Field(
        0.25, gt=0, le=1, description="linear: share of training over which β rises 0 → beta"
    )
    cycles: int = Field(4, ge=1, description="cyclical: M, the number of cycles (Fu et al. 2019)")
    rising_share: float = Field(
        0.5, gt=0, le=1, description="cyclical: R, the share of each cycle over which β rises"
    )
    delay_epochs: int = Field(50, ge=0, description="delayed-linear: epochs at β = 0 before the ramp")
    ramp_epochs: int = Field(50, ge=1, description="delayed-linear: epochs over which β rises 0 → beta")
    cycle_epochs: int = Field(20, ge=1, description="decreasing-cosine: epochs per cycle")


def beta_at(schedule: BetaSchedule, step: int, total_steps: int, epochs: int = 1) -> float:
    """β at optimisation step `step` (0-based) of `total_steps` in `epochs` equal epochs."""
    if schedule.kind == "constant":
        return schedule.beta
    epoch = step * epochs // max(total_steps, 1)  # 0-based, for the per-epoch schedules
    if schedule.kind == "delayed-linear":
        return schedule.beta * min(1.0, max(0, epoch - schedule.delay_epochs) / schedule.ramp_epochs)
    if schedule.kind == "decreasing-cosine":
        phase = (epoch % schedule.cycle_epochs) / schedule.cycle_epochs
        return schedule.beta * 0.5 * (1 + math.cos(math.pi * phase))
    if schedule.kind == "linear":
        warmup = max(1.0, schedule.warmup_share * total_steps)
        return schedule.beta * min(1.0, step / warmup)
    period = math.ceil(total_steps / schedule.cycles)
    tau = (step % period) / (total_steps / schedule.cycles)
    return schedule.beta * min(1.0, tau / schedule.rising_share)
