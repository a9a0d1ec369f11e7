"""β schedules for the VAE's KL weight, as a function of the optimisation step."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from atml.config import Strict

SCHEDULES = ("constant", "linear", "cyclical")


class BetaSchedule(Strict):
    kind: Literal["constant", "linear", "cyclical"] = "constant"
    beta: float = Field(1.0, ge=0, description="the β the schedule reaches (and holds)")
    warmup_share: float = Field(
        0.25, gt=0, le=1, description="linear: share of training over which β rises 0 → beta"
    )
    cycles: int = Field(4, ge=1, description="cyclical: M, the number of cycles (Fu et al. 2019)")
    rising_share: float = Field(
        0.5, gt=0, le=1, description="cyclical: R, the share of each cycle over which β rises"
    )


def beta_at(schedule: BetaSchedule, step: int, total_steps: int) -> float:
    """β at optimisation step `step` (0-based) of `total_steps`."""
    if schedule.kind == "constant":
        return schedule.beta
    if schedule.kind == "linear":
        warmup = max(1.0, schedule.warmup_share * total_steps)
        return schedule.beta * min(1.0, step / warmup)
    period = math.ceil(total_steps / schedule.cycles)
    tau = (step % period) / (total_steps / schedule.cycles)
    return schedule.beta * min(1.0, tau / schedule.rising_share)
