"""pix2pix folders (both layouts) and the self-made pairs, on small files made here."""
import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.cli import main
from rl_i2it.data import faces, paired
from rl_i2it.errors import UserError


def save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def half(value, h=8, w=8):
    return np.full((h, w, 3), value, np.uint8)


def test_ab_layout_splits_left_and_right_and_direction_swaps(tmp_path):
    for i in range(3):
        save(tmp_path / "train" / f"{i}.png", np.concatenate([half(10 + i), half(100 + i)], 1))
    a, b = paired.read_pix2pix(tmp_path / "train")
    assert a.shape == b.shape == (3, 3, 8, 8) and a.dtype == torch.uint8
    assert a[:, 0, 0, 0].tolist() == [10, 11, 12] and b[:, 0, 0, 0].tolist() == [100, 101, 102]
    b2, a2 = paired.read_pix2pix(tmp_path, "BtoA", split="train")      # the split as an argument
    assert torch.equal(a2, a) and torch.equal(b2, b)
    a3, _ = paired.read_pix2pix(tmp_path / "train", size=4, mode="L")
    assert a3.shape == (3, 1, 4, 4)


def test_a_b_layout_with_matching_names(tmp_path):
    for i in range(2):
        save(tmp_path / "A" / "val" / f"x{i}.jpg", half(30))
        save(tmp_path / "B" / "val" / f"x{i}.jpg", half(220, 6, 6))
    with pytest.raises(UserError, match="pass a size"):
        paired.read_pix2pix(tmp_path, split="val")
    a, b = paired.read_pix2pix(tmp_path, split="val", size=16)
    assert a.shape == b.shape == (2, 3, 16, 16)
    assert abs(a.float().mean() - 30) < 3 and abs(b.float().mean() - 220) < 3
    for i in range(2):                            # lower-case a/ and b/ (a hint about "folders a, b" before)
        save(tmp_path / "low" / "a" / f"x{i}.png", half(40))
        save(tmp_path / "low" / "b" / f"x{i}.png", half(200))
    a, b = paired.read_pix2pix(tmp_path / "low")
    assert a.shape == (2, 3, 8, 8) and int(a[0, 0, 0, 0]) == 40 and int(b[0, 0, 0, 0]) == 200


def test_a_resized_set_is_read_once_then_from_the_cache_until_a_file_changes(tmp_path, monkeypatch):
    """A large pix2pix set is decoded once: later runs read the resized arrays (no image opened);
    a file rewritten (new size or time) is read again. Each image is resized as it is read."""
    for i in range(3):
        save(tmp_path / "ab" / f"{i}.png", np.concatenate([half(10 + i, 16, 16), half(100 + i, 16, 16)], 1))
    sizes = []
    real_open = paired._open
    monkeypatch.setattr(paired, "_open", lambda p, mode: sizes.append(p) or real_open(p, mode))
    a, b = paired.read_pix2pix(tmp_path / "ab", size=8)
    assert len(sizes) == 3 and a.shape == b.shape == (3, 3, 8, 8)
    assert a[:, 0, 0, 0].tolist() == [10, 11, 12] and b[:, 0, 0, 0].tolist() == [100, 101, 102]
    b2, a2 = paired.read_pix2pix(tmp_path / "ab", "BtoA", size=8)
    assert len(sizes) == 3 and torch.equal(a2, a) and torch.equal(b2, b)          # from the cache
    assert paired.read_pix2pix(tmp_path / "ab", size=4)[0].shape == (3, 3, 4, 4) and len(sizes) == 6
    save(tmp_path / "ab" / "1.png", np.concatenate([half(50, 16, 16), half(150, 16, 16)], 1))
    a, b = paired.read_pix2pix(tmp_path / "ab", size=8)
    assert len(sizes) == 9 and a[:, 0, 0, 0].tolist() == [10, 50, 12] and b[1, 0, 0, 0] == 150
    paired.read_pix2pix(tmp_path / "ab")                                          # unresized: never cached
    paired.read_pix2pix(tmp_path / "ab")
    assert len(sizes) == 15


def test_sixteen_bit_and_exif_rotated_pictures_are_read_as_shown(tmp_path):
    deep = Image.fromarray(np.full((8, 16), 30000, np.uint16))       # a 16-bit depth map beside its photo
    (tmp_path / "ab").mkdir()
    deep.save(tmp_path / "ab" / "1.png")
    (tmp_path / "ab" / "._1.png").write_bytes(b"\x00\x05\x16\x07")        # macOS's shadow file: skipped
    a, b = paired.read_pix2pix(tmp_path / "ab")
    assert a.shape == (1, 3, 8, 8) and abs(int(a[0, 0, 0, 0]) - round(30000 / 65535 * 255)) <= 1
    (tmp_path / "r").mkdir()                      # stored 16 wide x 8 high, shown 8 x 16: left half white
    arr = np.zeros((8, 32, 3), np.uint8)
    arr[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                              # rotate 90 degrees clockwise to show
    Image.fromarray(arr).save(tmp_path / "r" / "1.jpg", exif=exif, quality=95)
    a, b = paired.read_pix2pix(tmp_path / "r")
    assert a.shape == (1, 3, 32, 4)               # shown 8 wide, 32 high: A is its left 4 columns
    assert a[0, :, :12].float().mean() > 200 and a[0, :, -12:].float().mean() < 50   # white on top


def test_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="not found"):
        paired.read_pix2pix(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        paired.read_pix2pix(tmp_path / "empty")
    (tmp_path / "sets" / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="folders train: a split layout is read from train/ and test/"):
        paired.read_pix2pix(tmp_path / "sets")
    save(tmp_path / "odd" / "0.png", np.zeros((8, 15, 3), np.uint8))
    with pytest.raises(UserError, match="width 15 is odd"):
        paired.read_pix2pix(tmp_path / "odd")
    save(tmp_path / "mixed" / "0.png", np.zeros((8, 16, 3), np.uint8))
    save(tmp_path / "mixed" / "1.png", np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(UserError, match="differ in size"):
        paired.read_pix2pix(tmp_path / "mixed")
    assert paired.read_pix2pix(tmp_path / "mixed", size=8)[0].shape == (2, 3, 8, 8)
    for name in ("a", "b", "c"):
        save(tmp_path / "ab" / "A" / f"{name}.png", half(0))
    for name in ("a", "d"):
        save(tmp_path / "ab" / "B" / f"{name}.png", half(0))
    with pytest.raises(UserError, match=r"only in A: \['b.png', 'c.png'\]; only in B: \['d.png'\]"):
        paired.read_pix2pix(tmp_path / "ab")
    save(tmp_path / "nested" / "A" / "val" / "0.png", half(0))
    save(tmp_path / "nested" / "B" / "val" / "0.png", half(0))
    with pytest.raises(UserError, match="folders val: a split layout is read from"):
        paired.read_pix2pix(tmp_path / "nested")
    assert paired.read_pix2pix(tmp_path / "nested", split="val")[0].shape == (1, 3, 8, 8)
    with pytest.raises(UserError, match="unknown direction"):
        paired.read_pix2pix(tmp_path / "mixed", direction="AB")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "0.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="not a readable image"):
        paired.read_pix2pix(tmp_path / "junk")


def test_a_huge_picture_and_nan_pixels_are_said_in_one_line(tmp_path, monkeypatch):
    from rl_i2it.data.images import read_image
    save(tmp_path / "big" / "0.png", np.zeros((16, 32, 3), np.uint8))
    save(tmp_path / "face" / "0.png", np.zeros((16, 16, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)                 # 512 > 2 x 100 pixels: Pillow's bomb
    with pytest.raises(UserError, match=r"0.png: Image size \(512 pixels\) exceeds limit"):
        paired.read_pix2pix(tmp_path / "big")
    with pytest.raises(UserError, match=r"0.png: Image size \(256 pixels\) exceeds limit"):
        faces.load_faces(8, source=tmp_path / "face")
    monkeypatch.undo()
    grey = np.ones((6, 6), np.float32)
    grey[2, 3] = np.nan                                                   # a float TIFF with a hole in it
    Image.fromarray(grey, "F").save(tmp_path / "nan.tif")
    with pytest.raises(UserError, match="nan.tif: holds NaN or infinite pixel values"):
        read_image(tmp_path / "nan.tif")


def disc_images(n=4, size=48):
    """Coloured discs on a flat background: clear edges, smooth elsewhere."""
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, 3, size, size), np.uint8)
    for i in range(n):
        r = np.hypot(yy - size / 2 - i, xx - size / 2 + i) < size / 4
        out[i] = np.where(r, np.array([200, 60 + 20 * i, 40])[:, None, None], np.array([30, 90, 160])[:, None, None])
    return torch.from_numpy(out)


def test_edges_are_dark_lines_on_white_where_the_photo_changes():
    photos = disc_images()
    edges, target = paired.edges_to_photo(photos)
    assert edges.shape == photos.shape and edges.dtype == torch.uint8 and target is photos
    e = edges[:, 0].numpy()
    assert set(np.unique(e)) <= {0, 255} and (e == 255).mean() > 0.85     # mostly white
    assert np.array_equal(edges[:, 0], edges[:, 2])                        # grey in three channels
    yy, xx = np.mgrid[:48, :48]
    ring = np.abs(np.hypot(yy - 24, xx - 24) - 12) <= 2
    assert (e[0][ring] == 0).mean() > 0.15 and (e[0][~ring] == 0).mean() < 0.01
    assert paired.edges_to_photo(photos, channels=1)[0].shape == (4, 1, 48, 48)
    with pytest.raises(ValueError, match="uint8"):
        paired.edges_to_photo(photos.float())


def test_grey_is_the_luminance():
    photos = torch.randint(0, 256, (3, 3, 9, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    grey, colour = paired.grey_to_colour(photos)
    assert grey.shape == (3, 1, 9, 7) and grey.dtype == torch.uint8 and colour is photos
    p = photos.double()
    luma = 0.299 * p[:, 0] + 0.587 * p[:, 1] + 0.114 * p[:, 2]
    assert (grey[:, 0].double() - luma).abs().max() <= 0.51
    pil = np.asarray(Image.fromarray(photos[0].permute(1, 2, 0).numpy()).convert("L"))
    assert np.array_equal(grey[0, 0].numpy(), pil)                         # same as Pillow's L
    assert paired.grey_to_colour(photos, channels=3)[0].shape == (3, 3, 9, 7)


def test_photo_crops_are_seeded_and_train_test_regions_disjoint():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 100, 3), dtype=np.uint8)
    tr = paired.photo_crops([("p", photo)], 16, "train")
    te = paired.photo_crops([("p", photo)], 16, "test")
    assert tr.shape == (paired.CROPS_PER_PHOTO["train"], 3, 16, 16) and te.shape[1:] == (3, 16, 16)
    assert np.array_equal(tr, paired.photo_crops([("p", photo)], 16, "train"))
    marked = photo.copy()
    marked[:, 75:] = 0                                  # the test region is the right quarter
    assert np.array_equal(paired.photo_crops([("p", marked)], 16, "train"), tr)
    assert paired.photo_crops([("p", photo[:10])], 16, "train").shape[0] == 0   # too small


def test_photo_pairs_from_faces_and_photos_are_cached(monkeypatch):
    calls = []

    def fake_faces(size, split, fetch=True):
        calls.append(split)
        return disc_images(3 if split == "train" else 1, size)

    monkeypatch.setattr(paired, "load_faces", fake_faces)
    photo = np.random.default_rng(1).integers(0, 256, (40, 100, 3), dtype=np.uint8)
    monkeypatch.setattr(paired, "sample_photos", lambda: [("p", photo)])
    src, tgt = paired.photo_pairs("grey", 16, "test")
    assert calls == ["test"] and src.shape == (1 + paired.CROPS_PER_PHOTO["test"], 1, 16, 16)
    assert tgt.shape == (len(src), 3, 16, 16)
    src2, tgt2 = paired.photo_pairs("grey", 16, "test")
    assert calls == ["test"] and torch.equal(src, src2) and torch.equal(tgt, tgt2)   # from the cache
    e, _ = paired.photo_pairs("edges", 16, "train")
    assert e.shape == (3 + paired.CROPS_PER_PHOTO["train"], 3, 16, 16)
    with pytest.raises(UserError, match="unknown pair kind"):
        paired.photo_pairs("depth")
    with pytest.raises(UserError, match="unknown split"):
        paired.photo_pairs("grey", split="all")


def test_fetch_photos_copies_checked_files_from_the_deb(tmp_path, monkeypatch):
    from rl_i2it.data import cache
    root = tmp_path / "deb" / paired.OPENCV_DOC
    root.mkdir(parents=True)
    photos = {}
    for i, name in enumerate(("a.jpg", "b.png")):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name)
        photos[name] = cache.sha256(root / name)
    monkeypatch.setattr(paired, "OPENCV_PHOTOS", photos)
    monkeypatch.setattr(cache, "apt_download", lambda package, dest: tmp_path / "deb")
    out = paired.fetch_photos()
    assert sorted(p.name for p in out.iterdir()) == [".fetch.lock", "a.jpg", "b.png"]   # (the lock: see test_cache)
    assert [n for n, _ in paired.sample_photos() if n.startswith("photos:")] == ["photos:a.jpg", "photos:b.png"]
    (out / "b.png").write_bytes(b"damaged")                       # `data fetch photos` checks what is there
    assert paired.fetch_photos() == out and (out / "b.png").read_bytes() == b"damaged"   # (a plain call: present)
    assert paired.fetch_photos(verify=True) == out and cache.sha256(out / "b.png") == photos["b.png"]
    (out / "b.png").write_bytes(b"damaged")
    assert main(["data", "fetch", "photos"]) == 0 and cache.sha256(out / "b.png") == photos["b.png"]
    monkeypatch.setattr(paired, "OPENCV_PHOTOS", {**photos, "a.jpg": "0" * 64})
    with pytest.raises(UserError, match="sha256"):
        paired.fetch_photos(force=True)


def test_a_damaged_fetched_photo_is_said_not_left_out(tmp_path, monkeypatch):
    """A fetched photo damaged since would shrink every photo set unsaid; a file of the user's
    that is no image is passed over."""
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.jpg").write_bytes(b"not an image")
    names = [n for n, _ in paired.sample_photos()]
    assert not any(n.startswith("photos:") for n in names)
    (tmp_path / "photos" / next(iter(paired.OPENCV_PHOTOS))).write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(UserError, match="is damaged .*rl-i2it data fetch photos --force"):
        paired.sample_photos()


def test_the_photo_set_is_the_same_on_every_install(tmp_path, monkeypatch):
    """scikit-learn's two photos are in it (a dependency); without scikit-learn: said, not a
    smaller photo set drawn unsaid (another install's crops would be of other pictures)."""
    import sys
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path))
    names = [n for n, _ in paired.sample_photos()]
    assert names[:2] == ["sklearn:china.jpg", "sklearn:flower.jpg"]
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)        # import fails
    with pytest.raises(UserError, match="scikit-learn is not installed"):
        paired.sample_photos()
