import pytest
import torch

from atml.data.batching import TensorBatches
from atml.errors import TrainingDivergedError
from atml.runs import Run
from atml.training import Checkpointing, fit


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
