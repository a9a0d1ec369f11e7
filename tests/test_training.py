import logging

import pytest
import torch

from atml.data.batching import TensorBatches
from atml.errors import DamagedFileError, TrainingDivergedError
from atml.runs import Run
from atml.training import Checkpointing, fit, fit_stacked


def regression_problem(init_seed=0):
    x = torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    torch.manual_seed(init_seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        xb, yb = batch
        loss = torch.nn.functional.mse_loss(model(xb).squeeze(1), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss}

    return model, opt, step, TensorBatches(x, y, batch_size=32, seed=init_seed)


def test_fit_lowers_the_loss_and_logs_rows():
    _, _, step, batches = regression_problem()
    history = fit(step, batches, 5, label="t", log_every=4, evaluate=lambda e: {"val": float(e)})
    assert len(history.epochs) == 5 and history.epochs[-1]["val"] == 4.0
    assert len(history.steps) == 5 * 2
    assert history.epochs[-1]["loss"] < 0.01 * history.epochs[0]["loss"]


def test_nan_loss_is_a_clear_error():
    def step(batch):
        return {"loss": torch.tensor(float("nan"))}

    with pytest.raises(TrainingDivergedError, match="loss=nan at step"):
        fit(step, TensorBatches(torch.zeros(8), batch_size=4), 1, label="t", log_every=1)


def test_interrupted_fit_resumes_to_the_same_result(tmp_path):
    def run_dir(name):
        return Run.create(tmp_path, "t", name, {}, env={})

    model, opt, step, batches = regression_problem()
    fit(
        step,
        batches,
        4,
        label="t",
        checkpointing=Checkpointing(run_dir("straight"), "k", {"m": model, "o": opt, "b": batches}),
    )
    straight = model.weight.detach().clone()

    run = run_dir("interrupted")
    model, opt, step, batches = regression_problem()
    calls = {"n": 0}

    def stop_in_epoch_three(batch):
        calls["n"] += 1
        if calls["n"] == 2 * len(batches) + 3:
            raise KeyboardInterrupt
        return step(batch)

    with pytest.raises(KeyboardInterrupt):
        fit(
            stop_in_epoch_three,
            batches,
            4,
            label="t",
            checkpointing=Checkpointing(run, "k", {"m": model, "o": opt, "b": batches}),
        )
    assert run.load_checkpoint("k")["epoch"] == 1  # two epochs completed

    model, opt, step, batches = regression_problem(
        init_seed=5
    )  # fresh objects, state comes from the checkpoint
    history = fit(
        step,
        batches,
        4,
        label="t",
        checkpointing=Checkpointing(run, "k", {"m": model, "o": opt, "b": batches}),
    )
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]
    assert torch.allclose(model.weight, straight)


def stacked_problem(runs):
    """Two regression models trained as one stack, each checkpointed in its own run folder."""
    problems = [regression_problem(init_seed=seed) for seed in (0, 1)]
    batches = problems[0][3]

    def step(batch):
        return {"loss": torch.stack([p[2](batch)["loss"] for p in problems])}

    states = [{"m": m, "o": o, "b": batches} for m, o, _, _ in problems]
    return problems, step, batches, [Checkpointing(run, "k", st) for run, st in zip(runs, states)]


def stack_runs(tmp_path, name):
    return [Run.create(tmp_path / name, "t", f"seed{seed}", {}, env={}) for seed in (0, 1)]


def weights(problems):
    return [p[0].weight.detach().clone() for p in problems]


@pytest.mark.parametrize("kill_at", [1, 3])  # the epoch whose save is cut: the first, a later one
@pytest.mark.parametrize("method", ["save_checkpoint", "keep_previous_checkpoint"])
def test_a_stack_killed_while_saving_resumes_all_copies_from_one_epoch(
    tmp_path, monkeypatch, caplog, method, kill_at
):
    """Copies of a stack are saved one after another; a process killed between two saves (before
    the second copy's save, or after its old file was set aside) must still resume, every copy
    from the last epoch all of them saved (none, when it was the first), to the numbers of an
    uninterrupted run."""
    problems, step, batches, checkpointing = stacked_problem(stack_runs(tmp_path, "straight"))
    fit_stacked(step, batches, 4, label="t", checkpointing=checkpointing)
    straight = weights(problems)

    runs = stack_runs(tmp_path, "killed")
    problems, step, batches, checkpointing = stacked_problem(runs)
    original, calls = getattr(Run, method), {"n": 0}

    def dies_saving(self, key, *rest):
        if self is runs[1]:
            calls["n"] += 1
            if calls["n"] == kill_at:
                if method == "keep_previous_checkpoint":
                    original(self, key, *rest)
                raise KeyboardInterrupt
        return original(self, key, *rest)

    monkeypatch.setattr(Run, method, dies_saving)
    with pytest.raises(KeyboardInterrupt):
        fit_stacked(step, batches, 4, label="t", checkpointing=checkpointing)
    monkeypatch.undo()
    assert runs[0].load_checkpoint("k")["epoch"] == kill_at - 1  # the first copy is an epoch ahead
    second = runs[1].load_checkpoint("k") or runs[1].load_checkpoint("k", previous=True)
    assert (second["epoch"] if second else None) == (kill_at - 2 if kill_at > 1 else None)

    problems, step, batches, checkpointing = stacked_problem(runs)  # fresh objects
    caplog.set_level(logging.INFO, logger="atml")
    histories = fit_stacked(step, batches, 4, label="t", checkpointing=checkpointing)
    said = "resuming from the start" if kill_at == 1 else f"resuming after epoch {kill_at - 1}/4"
    assert said in caplog.text
    assert [[r["epoch"] for r in h.epochs] for h in histories] == [[1, 2, 3, 4]] * 2
    assert all(torch.allclose(a, b) for a, b in zip(weights(problems), straight))
    assert not list(runs[0].dir.glob("checkpoints/*.previous.pt"))


def test_a_stack_whose_checkpoints_share_no_epoch_is_refused_naming_each(tmp_path):
    runs = stack_runs(tmp_path, "mixed")
    _, step, batches, checkpointing = stacked_problem(runs)
    fit_stacked(step, batches, 3, label="t", checkpointing=checkpointing)
    runs[0].save_checkpoint("k", {**runs[0].load_checkpoint("k"), "epoch": 0})  # seed 0 after epoch 1
    _, step, batches, checkpointing = stacked_problem(runs)
    with pytest.raises(DamagedFileError, match=r"share no epoch .*seed0.*: \[1\].*seed1.*: \[3\]"):
        fit_stacked(step, batches, 4, label="t", checkpointing=checkpointing)
