"""`atml cache info | clear` and the size cap: every cache is an optimisation, so what is deleted
is computed again when next needed."""

import os
import time

import pytest

from atml import cache


def fill(root, kind, name, size, days_old=0.0):
    path = root / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    then = time.time() - days_old * 86400
    os.utime(path, (then, then))
    return path


def test_info_and_clear_by_kind_and_age(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path))
    old = fill(tmp_path, "features", "old.pt", 3_000_000, days_old=40)
    new = fill(tmp_path, "features", "new.pt", 1_000_000)
    judge = fill(tmp_path, "classifiers", "mnist-x.pt", 2_000_000, days_old=40)
    code, out, _ = cli("cache", "info")
    features = next(line for line in out.splitlines() if line.split()[:1] == ["features"])
    assert code == 0 and features.split()[1:5] == ["2", "files", "4.0", "MB"] and "total 6.0 MB" in out
    code, out, _ = cli("cache", "clear", "features", "--older-than", "30")
    assert code == 0 and "deleted 1 files (3.0 MB) of features" in out
    assert not old.exists() and new.exists() and judge.exists()
    code, out, _ = cli("cache", "clear")
    assert code == 0 and not new.exists() and not judge.exists()
    code, _, err = cli("cache", "clear", "weights")
    assert code == 2 and "unknown cache 'weights'; atml's caches: features, classifiers" in err


def test_a_cap_deletes_the_least_recently_used_files_but_the_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ATML_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ATML_CACHE_MAX_GB", "0.005")  # 5 MB
    oldest = fill(tmp_path, "features", "a.pt", 2_000_000, days_old=3)
    older = fill(tmp_path, "classifiers", "b.pt", 2_000_000, days_old=2)
    just_written = fill(tmp_path, "features", "c.pt", 2_000_000)
    cache.fit_to_cap(keep=just_written)
    assert not oldest.exists() and older.exists() and just_written.exists()


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_cap_is_refused_before_a_run_folder(cli, tmp_path, monkeypatch, value):
    monkeypatch.setenv("ATML_CACHE_MAX_GB", value)
    code, _, err = cli("run", "gan", "--smoke", "--out", tmp_path / "out")
    assert code == 2 and "ATML_CACHE_MAX_GB" in err and not (tmp_path / "out").exists()
