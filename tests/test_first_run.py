"""The first run on a connected machine, against a stand-in internet on loopback (tests/internet):
every download goes through the libraries' own, unmodified code and the settings a user could set
(an HTTPS proxy with its own CA via https_proxy + SSL_CERT_FILE; a Hugging Face mirror via
HF_ENDPOINT), from empty caches and an empty data root, in a fresh `python -m atml` process.

What each case reaches:
- MNIST / FashionMNIST: torchvision.datasets.utils.download_and_extract_archive with torchvision's
  own mirrors and md5 table (urllib through the proxy: CONNECT + TLS for MNIST's https mirror,
  a plain proxied GET for FashionMNIST's http one). The md5s are real: the files are the real ones.
- torchvision weights: torch.hub.download_url_to_file from download.pytorch.org (through the proxy),
  into torch hub's checkpoints folder, its hash-prefix check included.
- timm and open_clip weights: huggingface_hub.hf_hub_download from the mirror into the hub cache
  (models--<org>--<repo>/blobs + snapshots/<commit>/<file>), the repo and file name taken from the
  libraries' own pretrained configs; timm.create_model / open_clip.create_model load them.
Not reached: the real hosts' redirects to their CDNs (the stand-in answers 200 at once) and
huggingface_hub's Xet transfer (the stand-in sends no Xet headers, as a plain mirror does not).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REAL_DATA
from tests.internet import files
from tests.internet.server import StandIn, hub_url

pytestmark = pytest.mark.internet

MNIST_TEST = [f"t10k-{kind}-idx{d}-ubyte.gz" for kind, d in (("images", 3), ("labels", 1))]
MNIST_TRAIN = [f"train-{kind}-idx{d}-ubyte.gz" for kind, d in (("images", 3), ("labels", 1))]
VIT = "vit_base_patch16_224.orig_in21k_ft_in1k"  # atml/experiments/vit/configs/original.yaml
CLIP = ("ViT-B-32", "openai")  # atml/experiments/clip/configs/original.yaml
RESNETS = {"resnet152": "resnet152-394f9c45.pth", "resnet18": "resnet18-f37072fd.pth"}


def _missing_real_files() -> str | None:
    if not all((REAL_DATA / "MNIST" / "raw" / f).is_file() for f in MNIST_TEST):
        return f"MNIST's real test split is not in {REAL_DATA} (its md5 must be torchvision's)"
    if not all((files.FASHION_SYSTEM / f).is_file() for f in files.FASHION_MTIMES):
        return "Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"
    return None


def _hub_locations() -> dict[str, str]:
    """The Hugging Face repo and file each library's pretrained config names."""
    import open_clip
    import timm

    vit = timm.models.get_pretrained_cfg(VIT)
    clip_repo = open_clip.get_pretrained_cfg(*CLIP)["hf_hub"].rstrip("/")
    return {"vit": f"{vit.hf_hub_id}/{vit.hf_hub_filename or 'model.safetensors'}",
            "clip": f"{clip_repo}/open_clip_model.safetensors"}  # fmt: skip


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    """The stand-in internet with every file a first run asks for, made once per module."""
    import torchvision.datasets as tvd

    missing = _missing_real_files()
    if missing:
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("internet")
    served: dict[str, Path] = {}

    def serve(url: str, data: bytes) -> None:
        path = folder / hashlib.sha256(url.encode()).hexdigest()[:16]
        path.write_bytes(data)
        served[url] = path

    md5 = dict(tvd.MNIST.resources) | {f"fashion/{k}": v for k, v in tvd.FashionMNIST.resources}
    for name in MNIST_TEST:
        data = (REAL_DATA / "MNIST" / "raw" / name).read_bytes()
        assert hashlib.md5(data).hexdigest() == md5[name]
        serve(files.MNIST_MIRROR + name, data)
    for name in MNIST_TRAIN:  # not on these machines: made up, so torchvision's md5 check refuses it
        serve(files.MNIST_MIRROR + name, files.fake_idx_gz(images="images" in name, n=100))
    for name in files.FASHION_MTIMES:
        data = files.fashion_original(name)
        assert hashlib.md5(data).hexdigest() == md5[f"fashion/{name}"]
        serve(files.FASHION_MIRROR + name, data)
    for arch, name in RESNETS.items():
        serve(files.TORCH_MODELS + name, files.torchvision_weights(arch, name))
    hub = _hub_locations()
    serve(hub_url(*hub["vit"].rsplit("/", 1)), files.timm_weights(VIT))
    serve(hub_url(*hub["clip"].rsplit("/", 1)), files.open_clip_weights(CLIP[0]))
    with StandIn(served, folder) as stand_in:
        yield stand_in


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A new user's environment: an empty home (so empty caches), no machine-wide data folders."""
    drop = ("proxy", "HF_", "TORCH_HOME", "XDG_CACHE_HOME", "ATML_", "SSL_CERT", "REQUESTS_CA")
    env = {k: v for k, v in os.environ.items() if not any(d.lower() in k.lower() for d in drop)}
    return env | {"HOME": str(home), "ATML_NO_SYSTEM_DATA": "1", "MPLBACKEND": "Agg"} | extra


def _unreachable() -> dict[str, str]:
    """No network at all: a proxy and a hub mirror on a port that refuses, and HF_HUB_OFFLINE."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    return {"http_proxy": dead, "https_proxy": dead, "HF_ENDPOINT": dead, "HF_HUB_OFFLINE": "1"}


class User:
    """A new user in an empty folder with an empty home."""

    def __init__(self, folder: Path, internet: StandIn):
        self.folder, self.home, self.internet = folder, folder / "home", internet
        self.home.mkdir(parents=True)

    def atml(
        self, *args: str, online: bool = True, env: dict | None = None
    ) -> tuple[int, str, str, list[tuple[str, str]]]:
        before = len(self.internet.requests)
        done = subprocess.run(
            [sys.executable, "-m", "atml", *args],
            cwd=self.folder,
            env=_env(self.home, (self.internet.env() if online else _unreachable()) | (env or {})),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        return done.returncode, done.stdout, done.stderr, self.internet.requests[before:]

    def cached(self) -> list[Path]:
        """Every file in torch hub's and Hugging Face's caches."""
        caches = [self.home / ".cache" / library for library in ("torch", "huggingface")]
        return sorted(p for cache in caches for p in cache.rglob("*") if p.is_file())


@pytest.fixture
def user(tmp_path, internet) -> User:
    internet.cut.clear()
    internet.swapped.clear()
    return User(tmp_path / "user", internet)


def _metrics(user: User, experiment: str) -> dict:
    (folder,) = (user.folder / "outputs" / experiment).iterdir()
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.parametrize(("experiment", "part"), [("gan", "mode-collapse"), ("vae", "train")])
def test_first_run_downloads_its_data_as_torchvision_leaves_it_then_needs_no_request(user, experiment, part):
    code, _, err, requests = user.atml("run", experiment, "--smoke", "--part", part)
    assert code == 0, err
    folder = {"gan": "MNIST", "vae": "FashionMNIST"}[experiment]
    raw = user.folder / "data" / folder / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        n
        for gz in ({"gan": MNIST_TEST, "vae": list(files.FASHION_MTIMES)}[experiment])
        for n in (gz, gz[:-3])
    )  # torchvision's layout: each .gz beside its extracted file
    assert {url.rsplit("/", 1)[1] for _, url in requests} <= {p.name for p in raw.iterdir()}
    assert "two copies" not in err and "FAKE" not in err
    rerun = user.atml("run", experiment, "--smoke", "--part", part)
    assert rerun[0] == 0 and rerun[3] == [], rerun[2]


@pytest.mark.parametrize(
    ("experiment", "part", "library_file"),
    [
        ("resnet", "confusion", "torch/hub/checkpoints/resnet152-394f9c45.pth"),
        ("vit", "predict", "huggingface/hub/models--timm--vit_base_patch16_224.orig_in21k_ft_in1k"),
        ("clip", "zeroshot", "huggingface/hub/models--timm--vit_base_patch32_clip_224.openai"),
    ],
)
def test_a_presets_named_weights_download_through_their_library(user, experiment, part, library_file):
    code, _, err, requests = user.atml("run", experiment, "--preset", "original", "--smoke", "--part", part)
    assert code == 0, err
    record = _metrics(user, experiment)[part]["weights"]
    cached = user.home / ".cache" / library_file
    if cached.is_dir():  # the hub cache: a snapshot of the mirror's commit linking to the blob
        (cached,) = (cached / "snapshots").glob("*/*")
    served = {url: path for url, path in user.internet.files.items() if any(url == u for _, u in requests)}
    (path,) = [p for url, p in served.items() if "t10k" not in url and "ubyte" not in url]
    assert record["file"] == str(cached) and Path(record["file"]).read_bytes() == path.read_bytes()
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    rerun = user.atml("run", experiment, "--preset", "original", "--smoke", "--part", part)
    assert rerun[0] == 0 and rerun[3] == [], rerun[2]


def test_unwritable_caches_are_a_warning_and_the_run_downloads_into_a_temporary_folder(user):
    """Every cache (torch hub, Hugging Face, atml's own) lies under a file, so none can be made, as
    on a read-only mount (root, who runs CI, writes through a read-only mode)."""
    blocked = user.folder / "read-only"
    blocked.write_text("not a folder")
    caches = {
        "TORCH_HOME": blocked / "torch",
        "HF_HUB_CACHE": blocked / "hub",
        "ATML_CACHE_DIR": blocked / "atml",
    }
    for experiment, part in (("resnet", "confusion"), ("vit", "predict")):
        code, _, err, requests = user.atml(
            "run", experiment, "--preset", "original", "--smoke", "--part", part,
            env={k: str(v) for k, v in caches.items()},
        )  # fmt: skip
        assert code == 0, err
        assert "is not writable" in err and "temporary folder for this run only" in err, err
        record = _metrics(user, experiment)[part]["weights"]
        assert not Path(record["file"]).exists()  # the temporary folder went with the run
        assert requests and blocked.read_text() == "not a folder"


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("atml: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_cut_or_wrong_download_is_one_line_exit_3_and_leaves_nothing_then_the_next_run_works(user):
    internet = user.internet
    resnet = files.TORCH_MODELS + RESNETS["resnet152"]
    args = ("run", "resnet", "--preset", "original", "--smoke", "--part", "confusion")
    for trouble in ("cut", "swapped"):
        if trouble == "cut":
            internet.cut.add(resnet)
        else:
            internet.swapped[resnet] = internet.files[files.TORCH_MODELS + RESNETS["resnet18"]]
        code, _, err, _ = user.atml(*args)
        assert code == 3 and "resnet152-394f9c45.pth" in _one_line(err), err
        assert user.cached() == [] and not (user.folder / "outputs").exists()
        internet.cut.clear()
        internet.swapped.clear()
    hub = hub_url(*_hub_locations()["vit"].rsplit("/", 1))
    vit = ("run", "vit", "--preset", "original", "--smoke", "--part", "predict")
    for trouble, says in (("cut", "could not be downloaded"), ("swapped", "does not match the sha256")):
        if trouble == "cut":
            internet.cut.add(hub)
        else:  # the same size, other bytes: only the announced sha256 tells
            internet.swapped[hub] = internet.folder / "same-size"
            data = bytearray(internet.files[hub].read_bytes())
            data[-1] ^= 1
            internet.swapped[hub].write_bytes(bytes(data))
        code, _, err, _ = user.atml(*vit)
        assert code == 3 and says in _one_line(err), err
        assert [p for p in user.cached() if {"blobs", "snapshots"} & set(p.parts)] == []
        internet.cut.clear()
        internet.swapped.clear()
    fashion = files.FASHION_MIRROR + "t10k-images-idx3-ubyte.gz"
    internet.cut.add(fashion)
    code, _, err, _ = user.atml("run", "vae", "--smoke", "--part", "train")
    assert code == 3 and "download failed" in _one_line(err), err
    raw = user.folder / "data" / "FashionMNIST" / "raw"
    assert not any("t10k" in p.name or p.name.startswith(".atml-download") for p in raw.iterdir())
    internet.cut.clear()
    code, _, err, _ = user.atml(
        "run", "gan", "--smoke", "--part", "mode-collapse", "--set", "data.train_split=train"
    )
    assert code == 3 and "File not found or corrupted" in _one_line(err), err  # torchvision's md5 check
    assert not any("train" in p.name for p in (user.folder / "data" / "MNIST" / "raw").iterdir())
    for again in (args, vit, ("run", "vae", "--smoke", "--part", "train")):
        assert user.atml(*again)[0] == 0


def test_fetch_for_all_then_run_all_offline(user):
    """A login node fetches what `atml run all --preset original --smoke` needs; the compute node
    has no network at all (a proxy that refuses, HF_HUB_OFFLINE) and runs it."""
    what = ("--for", "all", "--preset", "original", "--smoke")
    code, out, _, requests = user.atml("data", "check", *what)
    assert code == 3 and "MISSING" in out and requests == []
    code, out, err, requests = user.atml("data", "fetch", *what)
    assert code == 0, err
    data = ["data: mnist test", "data: fashion-mnist train", "data: fashion-mnist test"]
    weights = ["resnet152 imagenet", "resnet18 imagenet", f"{VIT} pretrained", "ViT-B-32 openai"]
    for needed in [*data, *(f"weights: {w}" for w in weights)]:
        (line,) = [line for line in out.splitlines() if line.startswith(needed)]
        assert " MB " in line and str(user.folder) in line, line
    code, out, _, _ = user.atml("data", "check", *what, online=False)
    assert code == 0 and "MISSING" not in out, out
    code, out, err, _ = user.atml("run", "all", "--preset", "original", "--smoke", online=False)
    assert code == 0, err
    assert "5 of 5 experiments" in out or all(
        (user.folder / "outputs" / e).is_dir() for e in ("resnet", "vit", "gan", "vae", "clip")
    ), out
