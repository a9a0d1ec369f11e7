"""`python -m benchmarks` gathers every benchmark's two timings into one table (run here at smoke
sizes on fake data: the ratios are not checked, only that each side was timed and written)."""

import re

from benchmarks.__main__ import main


def test_the_benchmark_table_has_a_timed_row_per_benchmark(tmp_path, fake_root):
    out = tmp_path / "RESULTS.md"
    code = main(
        ["--smoke", "--only", "gan_throughput", "--only", "vae_throughput", "--root", str(fake_root)]
        + ["--out", str(out)]
    )
    text = out.read_text()
    assert code == 0, text
    assert "Machine:" in text and "torch threads" in text and "--smoke" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| gan_throughput") or line.startswith("| vae_")
    ]
    assert len(rows) == 2
    for row in rows:
        ratio, naive, ours = re.search(r"\*\*([\d.]+)x\*\* \| ([\d.]+) \| ([\d.]+) \|", row).groups()
        assert float(naive) > 0 and float(ours) > 0
        assert abs(float(ratio) - float(naive) / float(ours)) < 0.1 * float(ratio)


def test_a_benchmark_that_fails_is_a_row_and_the_exit_code(tmp_path, monkeypatch):
    monkeypatch.setenv("ATML_NO_SYSTEM_DATA", "1")  # no MNIST anywhere
    out = tmp_path / "RESULTS.md"
    code = main(
        ["--smoke", "--only", "gan_throughput", "--root", str(tmp_path / "nothing"), "--out", str(out)]
    )
    assert code == 1
    assert "| gan_throughput | NOT RUN: DataNotFoundError" in out.read_text()


def test_seeds_stacked_trains_every_seed_to_the_weights_it_reaches_alone(fake_root):
    from benchmarks import seeds_stacked

    result = seeds_stacked.main(["--smoke", "--root", str(fake_root), "--device", "cpu"])
    assert result.reference_s > 0 and result.ours_s > 0
    assert "every seed's weights alone vs stacked: identical" in result.work


def test_the_study_benchmark_takes_the_tables_device_and_root(tmp_path, monkeypatch):
    """`python -m benchmarks` passes --device and --root to every benchmark; the study benchmark
    hands them to each `atml run` it times (timings faked: only the command lines are checked)."""
    import benchmarks.__main__ as table
    from benchmarks import study_parallel

    monkeypatch.setattr(table, "machine", lambda device: "no GPU here: the table's machine line is faked")
    commands = []
    monkeypatch.setattr(study_parallel, "study_seconds", lambda args, out: commands.append(args) or 1.0)
    out = tmp_path / "RESULTS.md"
    code = main(["--smoke", "--only", "study_parallel", "--device", "cuda", "--root", "R", "--out", str(out)])
    assert code == 0, out.read_text()
    assert len(commands) == 5
    for args in commands:
        assert args[args.index("--device") + 1] == "cuda" and "data.root=R" in args
