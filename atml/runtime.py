"""Device choice and seeding: the only place that decides where tensors live."""

from __future__ import annotations

import random

import numpy as np
import torch

from atml.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(requested: str) -> torch.device:
    if requested not in DEVICES:
        raise UserError(f"unknown device '{requested}'; accepted: {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Torch's RNG states only: training draws from torch alone, and tensors load with weights_only."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
