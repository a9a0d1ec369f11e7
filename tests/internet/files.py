"""The files the stand-in internet serves: format-true, made by the tests, at the URLs the libraries
ask for.

- MNIST's test split and all of FashionMNIST: the real files, byte for byte what torchvision's md5
  table expects (MNIST's test split from the shared data folder; FashionMNIST's originals rebuilt
  from Debian's `dataset-fashion-mnist`, whose gzip members differ from them only in the header:
  the original file name and time, put back here). MNIST's training split is not on these
  machines: a fake one is served, and torchvision's md5 check refuses it (the wrong-checksum case).
- torchvision weights: every key and shape of the architecture, values drawn here; the file's
  sha256 starts with the 8 hex digits torchvision's file name carries (atml checks them), by
  8 bytes in the zip's comment (found by hash_prefix.c, kept in nonces.json).
- timm and open_clip weights: the model's own state dict (random init) as safetensors, under the
  Hugging Face repo and file name their pretrained config names.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")
# the originals' gzip header times (FNAME set, XFL 0, OS unix); the deflate data is Debian's
FASHION_MTIMES = {
    "train-images-idx3-ubyte.gz": 1504176606,
    "train-labels-idx1-ubyte.gz": 1504176606,
    "t10k-images-idx3-ubyte.gz": 1504176627,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first MNIST mirror
FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
TORCH_MODELS = "https://download.pytorch.org/models/"


def fashion_original(name: str) -> bytes:
    """FashionMNIST's original .gz (as torchvision downloads it) from Debian's recompressed one."""
    member = (FASHION_SYSTEM / name).read_bytes()
    if member[3] & 0x08:  # already carries a file name: an original
        return member
    header = bytes([0x1F, 0x8B, 8, 8]) + struct.pack("<I", FASHION_MTIMES[name]) + bytes([0, 3])
    return header + name[:-3].encode() + b"\0" + member[10:]


def torchvision_state(arch: str) -> dict:
    """Every key and shape of a torchvision model; weights drawn (He-scaled), BatchNorm at identity."""
    import torch
    import torchvision.models as tvm

    shapes = tvm.get_model(arch, weights=None).state_dict()
    draw = np.random.RandomState(0)  # the legacy generator: its stream never changes
    state = {}
    for key, t in shapes.items():
        if t.is_floating_point() and t.ndim > 1:
            values = draw.standard_normal(tuple(t.shape)) * (2.0 / t[0].numel()) ** 0.5
            state[key] = torch.from_numpy(values.astype(np.float32))
        elif key.endswith("running_var") or (key.endswith("weight") and t.ndim == 1):
            state[key] = torch.ones_like(t)
        else:
            state[key] = torch.zeros_like(t)
    return state


def _with_comment(zipped: bytes, nonce: bytes) -> bytes:
    """The zip with a comment ending in `nonce`, padded so that the nonce and sha256's padding fill
    the last 64-byte block (what hash_prefix.c searches)."""
    assert zipped[-22:-18] == b"PK\x05\x06" and zipped[-2:] == b"\0\0", "not a comment-less zip"
    length = 8 + (24 - len(zipped)) % 64
    filler = b"atml stand-in".ljust(length - 8, b".")[: length - 8]
    return zipped[:-2] + struct.pack("<H", length) + filler + nonce


def _search_nonce(prefix: bytes, target: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        program, data = Path(tmp) / "hash_prefix", Path(tmp) / "prefix"
        subprocess.run(
            ["gcc", "-O2", "-o", program, HERE / "hash_prefix.c", "-lcrypto", "-lpthread"], check=True
        )
        data.write_bytes(prefix)
        out = subprocess.run([program, data, target, "2"], check=True, capture_output=True, text=True)
    return bytes.fromhex(out.stdout.strip())


def torchvision_weights(arch: str, filename: str) -> bytes:
    """A state dict of `arch` whose sha256 starts with the digits in torchvision's file name."""
    import torch

    buffer = io.BytesIO()
    torch.save(torchvision_state(arch), buffer)
    target = filename.rsplit("-", 1)[1].split(".")[0]
    unsalted = _with_comment(buffer.getvalue(), bytes(8))[:-8]
    digest = hashlib.sha256(unsalted).hexdigest()
    known = json.loads((HERE / "nonces.json").read_text()) if (HERE / "nonces.json").is_file() else {}
    entry = known.get(filename, {})
    if entry.get("prefix_sha256") != digest:
        entry = {"prefix_sha256": digest, "nonce": _search_nonce(unsalted, target).hex()}
        known[filename] = entry
        (HERE / "nonces.json").write_text(json.dumps(known, indent=2) + "\n")
    data = unsalted + bytes.fromhex(entry["nonce"])
    assert hashlib.sha256(data).hexdigest().startswith(target)
    return data


def safetensors_of(model) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def timm_weights(name: str) -> bytes:
    import timm

    return safetensors_of(timm.create_model(name, pretrained=False))


def open_clip_weights(name: str) -> bytes:
    import open_clip

    return safetensors_of(open_clip.create_model(name))


def fake_idx_gz(images: bool, n: int) -> bytes:
    draw = np.random.RandomState(1)
    shape = (n, 28, 28) if images else (n,)
    array = draw.randint(0, 256 if images else 10, size=shape).astype(np.uint8)
    payload = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    return gzip.compress(payload)
