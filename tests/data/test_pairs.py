"""Synthetic pair generation: B-spline upsampling, invertible random fields, intensity changes,
labelled pairs; users' manifests resampled onto the model grid."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_anatomy
from rl_i2it.data.pairs import (PairSet, bspline_matrix, bspline_upsample, deform_pairs, load_pairs,
                                manifest_pairs, random_field, random_intensity)
from rl_i2it.data.cache import cached_arrays, save_arrays
from rl_i2it.data.volumes import write_nifti
from rl_i2it.errors import UserError
from rl_i2it.ops.metrics import jacobian_determinant, mean_dice


def test_bspline_weights_partition_unity_and_keep_constants():
    m = bspline_matrix(5, 40)
    assert m.shape == (40, 5) and torch.allclose(m.sum(1), torch.ones(40)) and (m >= 0).all()
    c = torch.full((1, 2, 4, 4, 4), 3.0)
    assert torch.allclose(bspline_upsample(c, (9, 10, 11)), torch.full((1, 2, 9, 10, 11), 3.0))
    ramp = torch.arange(5.0).view(1, 1, 5)            # cubic B-splines reproduce linear functions inside
    up = bspline_upsample(ramp, (41,))[0, 0]
    assert torch.allclose(up[10:31], torch.linspace(0, 4, 41)[10:31], atol=1e-5)


@pytest.mark.parametrize("shape", [(48, 48), (20, 20, 20)])
def test_random_fields_are_smooth_large_and_invertible(shape):
    u = random_field(3, shape, torch.Generator().manual_seed(0), magnitude=0.05 * max(shape))
    assert u.shape == (3, len(shape), *shape)
    assert u.abs().amax() > 0.05 * max(shape)              # large
    assert (jacobian_determinant(u) > 0).all()             # integrated velocity: folds nowhere
    again = random_field(3, shape, torch.Generator().manual_seed(0), magnitude=0.05 * max(shape))
    assert torch.equal(u, again)


def test_intensity_changes_stay_in_range_and_keep_background():
    img = torch.zeros(2, 1, 16, 16)
    img[:, :, 4:12, 4:12] = torch.linspace(0.1, 1, 8)
    out = random_intensity(img, torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1 and (out[img == 0] == 0).all()
    assert not torch.allclose(out, img)


def test_deform_pairs_warp_labels_with_images():
    imgs, labs = make_anatomy(3, 32, 2)
    ps = deform_pairs(imgs, labs, 10, seed=5, magnitude=1.5)
    assert len(ps) == 10 and ps.fixed.dtype == torch.uint8 and ps.shape == (32, 32)
    assert set(ps.fixed_labels.unique().tolist()) <= {0, 1, 2, 3}
    d = mean_dice(ps.moving_labels.long(), ps.fixed_labels.long())
    assert 0.3 < d.mean() < 0.98                          # deformed, not destroyed
    body = (ps.fixed_labels == 1) | (ps.fixed_labels > 1)
    assert ps.fixed[:, 0][body].float().mean() > ps.fixed[:, 0][~body].float().mean() + 50
    assert torch.equal(deform_pairs(imgs, labs, 10, seed=5, magnitude=1.5).moving, ps.moving)


def test_pair_set_round_trip(tmp_path):
    imgs, labs = make_anatomy(2, 16, 3)
    ps = deform_pairs(imgs, labs, 2, seed=0, magnitude=0.5)
    save_arrays(tmp_path / "p.npz", True, **ps.arrays())
    back = PairSet.of_arrays(cached_arrays(tmp_path / "p.npz", make=None))     # read, never made
    assert all(torch.equal(getattr(ps, k), getattr(back, k)) for k in ("fixed", "moving", "fixed_labels", "moving_labels"))
    with pytest.raises(UserError, match="does not match"):
        PairSet(ps.fixed, ps.moving[:1], ps.fixed_labels, ps.moving_labels)
    import struct
    import zipfile
    raw = bytearray((tmp_path / "p.npz").read_bytes())       # a damaged cache (its first deflate block): made again
    with zipfile.ZipFile(tmp_path / "p.npz") as z:
        at = z.infolist()[0].header_offset
    raw[at + 30 + sum(struct.unpack("<HH", raw[at + 26: at + 30]))] = 0x07
    (tmp_path / "p.npz").write_bytes(bytes(raw))
    made = cached_arrays(tmp_path / "p.npz", make=lambda: ps.arrays())
    assert torch.equal(PairSet.of_arrays(made).moving, ps.moving)
    assert torch.equal(PairSet.of_arrays(cached_arrays(tmp_path / "p.npz", make=None)).moving, ps.moving)   # saved


def test_manifest_pairs_resample_users_volumes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("m", "f"):
        write_nifti(tmp_path / f"{name}.nii.gz", rng.random((20, 20, 20)).astype(np.float32) * 1000, np.eye(4))
    lab = np.zeros((20, 20, 20), np.int16)
    lab[5:15, 5:15, 5:15] = 1
    write_nifti(tmp_path / "ml.nii.gz", lab, np.eye(4))
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels\nm.nii.gz,f.nii.gz,ml.nii.gz\n")
    ps = manifest_pairs(tmp_path / "pairs.csv", 16)
    assert ps.shape == (16, 16, 16) and ps.fixed.dtype == torch.uint8 and ps.fixed.max() > 200
    assert ps.moving_labels.sum() > 0 and ps.fixed_labels.sum() == 0
    assert load_pairs(f"manifest:{tmp_path / 'pairs.csv'}", size=16).shape == (16, 16, 16)
    write_nifti(tmp_path / "f.nii.gz", rng.random((20, 20, 21)).astype(np.float32), np.eye(4))
    assert manifest_pairs(tmp_path / "pairs.csv", 16).moving_labels.sum() > 0   # onto the fixed grid, by world
    far = np.eye(4)
    far[0, 3] = 500.0
    write_nifti(tmp_path / "m.nii.gz", rng.random((20, 20, 20)).astype(np.float32), far)
    with pytest.raises(UserError, match="a label map must lie on its image's grid"):
        manifest_pairs(tmp_path / "pairs.csv", 16)
    write_nifti(tmp_path / "ml.nii.gz", lab, far)
    with pytest.raises(UserError, match="do not overlap in world coordinates"):
        manifest_pairs(tmp_path / "pairs.csv", 16)
    far[0, 3] = 15.0                                                   # 5 of 21 fixed rows covered
    write_nifti(tmp_path / "m.nii.gz", rng.random((20, 20, 20)).astype(np.float32), far)
    write_nifti(tmp_path / "ml.nii.gz", lab, far)
    manifest_pairs(tmp_path / "pairs.csv", 16)
    assert "covers 24 % of the fixed grid: are both in one world space?" in capsys.readouterr().err
    for name, ids in (("m", [0, 70000, 484682470]), ("f", [0, 484682470, 70000])):     # ids beyond int16
        write_nifti(tmp_path / f"{name}.nii.gz", rng.random((20, 20, 20)).astype(np.float32), np.eye(4))
        write_nifti(tmp_path / f"{name}l.nii.gz", np.array(ids, np.int32)[lab + (lab > 0) * (np.arange(20) >= 10)], np.eye(4))
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels,fixed_labels\nm.nii.gz,f.nii.gz,ml.nii.gz,fl.nii.gz\n")
    ps = manifest_pairs(tmp_path / "pairs.csv", 20)
    assert set(ps.moving_labels.unique().tolist()) == {0, 1, 2}           # two labels kept apart, not wrapped
    assert torch.equal(ps.moving_labels == 1, ps.fixed_labels == 2)       # one id, one index in both maps
    write_nifti(tmp_path / "slice.nii.gz", rng.random((20, 20)).astype(np.float32), np.eye(4))   # a 2D row
    (tmp_path / "mixed.csv").write_text("moving,fixed\nslice.nii.gz,f.nii.gz\n")
    with pytest.raises(UserError, match="slice.nii.gz is 2D .*the fixed image 3D"):
        manifest_pairs(tmp_path / "mixed.csv", 16)
    with pytest.raises(UserError, match="unknown pair set"):
        load_pairs("nope")


def test_manifest_pairs_are_read_once_then_from_the_cache(tmp_path, monkeypatch, capsys):
    """Reading and resampling a user's volumes takes seconds a pair: a second run reads the cached
    arrays (no volume opened) and still says the placement notes; a changed file is read again."""
    from rl_i2it.data import volumes
    rng = np.random.default_rng(1)
    shifted = np.eye(4)
    shifted[0, 3] = 15.0                                                   # a note: 5 of 20 rows covered
    write_nifti(tmp_path / "f.nii.gz", rng.random((20, 20, 20)).astype(np.float32), np.eye(4))
    write_nifti(tmp_path / "m.nii.gz", rng.random((20, 20, 20)).astype(np.float32), shifted)
    (tmp_path / "pairs.csv").write_text("moving,fixed\nm.nii.gz,f.nii.gz\n")
    opened = []
    real = volumes.read_volume
    monkeypatch.setattr(volumes, "read_volume", lambda p, **k: opened.append(p) or real(p, **k))
    first = manifest_pairs(tmp_path / "pairs.csv", 16)
    assert len(opened) == 2 and "of the fixed grid" in capsys.readouterr().err
    again = manifest_pairs(tmp_path / "pairs.csv", 16)
    assert len(opened) == 2 and "of the fixed grid" in capsys.readouterr().err
    assert all(torch.equal(getattr(first, k), getattr(again, k)) for k in ("fixed", "moving", "moving_labels"))
    manifest_pairs(tmp_path / "pairs.csv", 12)                                # another size: read
    assert len(opened) == 4 and "of the fixed grid" in capsys.readouterr().err
    write_nifti(tmp_path / "m.nii.gz", rng.random((20, 20, 20)).astype(np.float32), np.eye(4))
    changed = manifest_pairs(tmp_path / "pairs.csv", 16)
    assert len(opened) == 6 and not torch.equal(changed.moving, first.moving)
    assert "of the fixed grid" not in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "registration" / "user").glob("16-*.npz"))) == 1     # rewritten, not copied
    lab = np.zeros((20, 20, 20), np.int16)
    lab[5:15, 5:15, 5:15] = 1
    write_nifti(tmp_path / "l.nii.gz", lab, np.eye(4))         # the same label file as moving's, then as fixed's
    (tmp_path / "roles.csv").write_text("moving,fixed,moving_labels,fixed_labels,split\n"
                                        "m.nii.gz,f.nii.gz,l.nii.gz,,train\nm.nii.gz,f.nii.gz,,l.nii.gz,test\n")
    train, test = (manifest_pairs(tmp_path / "roles.csv", 16, split=s) for s in ("train", "test"))
    assert train.moving_labels.sum() > 0 and train.fixed_labels.sum() == 0
    assert test.fixed_labels.sum() > 0 and test.moving_labels.sum() == 0
    (tmp_path / "gone.csv").write_text("moving,fixed\nmissing.nii.gz,f.nii.gz\n")
    with pytest.raises(UserError, match="not found: .*missing.nii.gz"):
        manifest_pairs(tmp_path / "gone.csv", 16)


@pytest.mark.parametrize("nd", [2, 3])
def test_moving_goes_onto_the_fixed_grid_through_world_coordinates(nd):
    """A moving image whose header puts it 3 mm further along x, with 2 mm voxels on axis 1 (from 0.5 mm): its
    box lands where the world says on the fixed grid, labels by nearest neighbour; the same grid and
    header come back as given; voxel to voxel keeps the array and needs one shape."""
    from rl_i2it.data.pairs import onto_fixed_grid
    from rl_i2it.data.volumes import Volume
    shape = (24, 20, 16)[:nd]
    box = np.zeros(shape, np.float32)
    box[(slice(6, 12), slice(4, 8)) + (slice(3, 9),) * (nd - 2)] = 1
    fixed = Volume(np.zeros((24, 30, 16)[:nd], np.float32), np.eye(4))
    a = np.diag([1.0, 2.0, 1.0, 1.0])
    a[0, 3], a[1, 3] = 3.0, 0.5
    moved, lab, cover, off = onto_fixed_grid(fixed, Volume(box, a), box.astype(np.int64))
    want = np.zeros(fixed.array.shape, np.float32)
    want[(slice(9, 15), slice(8, 16)) + (slice(3, 9),) * (nd - 2)] = 1      # x + 3; y = 2 j + 0.5: j 4..7 -> y 8..15
    assert moved.shape == fixed.array.shape and np.array_equal(moved > 0.5, want > 0.5)
    assert lab.dtype == np.int64 and np.array_equal(lab, want.astype(np.int64))
    assert 0.5 < cover < 1 and off == 0                                     # the moving image ends at x = 26 mm
    if nd == 2:                                          # the moving slice 4 mm above the fixed one, and tilted
        up, tilt = a.copy(), a.copy()
        up[2, 3] = 4.0
        tilt[2, 0] = 0.5
        assert onto_fixed_grid(fixed, Volume(box, up))[3] == 4.0
        assert abs(onto_fixed_grid(fixed, Volume(box, tilt))[3] - 0.5 * 23) < 1e-9
        coronal = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])   # in-plane axes x, z
        with pytest.raises(UserError, match="slices at 90 degrees"):    # one shared line smeared over the grid before
            onto_fixed_grid(fixed, Volume(box, coronal))
    same = Volume(box, np.eye(4))
    assert onto_fixed_grid(Volume(box, np.eye(4)), same)[0] is box
    assert onto_fixed_grid(Volume(box, np.eye(4)), Volume(box, a), by_voxel=True)[0] is box
    with pytest.raises(UserError, match="voxel to voxel needs one grid"):
        onto_fixed_grid(fixed, same, by_voxel=True)


def test_beyond_the_moving_image_reads_as_its_background():
    """A CT in HU (air -1000) that covers part of the fixed grid: beyond it the model sees air (0
    after normalising), not a bright slab of raw 0 (water, above the 99.5th percentile: 1.0 there
    before); the same through ``moving_at`` with ``fill`` (the --affine start), while the written
    warp keeps ANTs' zero."""
    import torch
    from rl_i2it.data.pairs import background, moving_at, normalise, onto_fixed_grid
    from rl_i2it.data.volumes import Volume
    ct = np.full((30, 30), -1000.0, np.float32)
    ct[8:22, 8:22] = -200.0                                  # tissue in air
    ct[12:18, 12:18] = -50.0
    fixed = Volume(np.zeros((30, 30), np.float32), np.eye(4))
    a = np.eye(4)
    a[0, 3] = 10.0                                           # the moving slice starts 10 mm in: rows 0-9 beyond it
    moved, _, cover, _ = onto_fixed_grid(fixed, Volume(ct, a))
    assert background(ct) == -1000.0 and 0.6 < cover < 0.7
    assert np.allclose(moved[:9], -1000.0) and normalise(moved)[:9].max() == 0.0
    assert np.allclose(moved[10:], ct[:20])                  # the image itself as before
    zero = torch.zeros(1, 2, 30, 30)
    assert np.allclose(moving_at(fixed, Volume(ct, a), ct, zero, fill=background(ct))[:9], -1000.0)
    assert np.allclose(moving_at(fixed, Volume(ct, a), ct, zero)[:9], 0.0)


@pytest.mark.parametrize("n", [32, 40, 160])                  # whole and fractional ratios (160 -> 128: 1.25)
def test_to_grid_keeps_every_voxel_where_the_fields_put_it_and_does_not_alias(n):
    from rl_i2it.data.pairs import to_grid
    size = 128 if n == 160 else 8
    ramp = torch.arange(float(n)).view(n, 1).expand(n, 24)    # x shrinks, y (24) shrinks or grows
    centres = (torch.arange(size) + 0.5) * n / size - 0.5     # align_corners=False: resize_field's geometry
    out = to_grid(ramp, size)
    inner = slice(2, -2)                                     # (the border replicates: a ramp bends there)
    assert out.shape == (size, size) and torch.allclose(out[inner, 0], centres[inner], atol=1e-4)
    if n >= 2 * size:                                        # (a 1.25 shrink hardly aliases: sigma 0.125)
        noise = torch.rand(n, n, generator=torch.Generator().manual_seed(0))
        point = F.interpolate(noise[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        assert to_grid(noise, size).std() < 0.75 * point.std()    # averaged, not point samples (aliasing)


def test_to_grid_3d_and_labels():
    from rl_i2it.data.pairs import to_grid
    noise = torch.rand(32, 32, 32, generator=torch.Generator().manual_seed(0))
    small = to_grid(noise, 8)
    assert small.shape == (8, 8, 8) and small.std() < 0.06 < noise.std() / 4
    assert abs(float(small.mean() - noise.mean())) < 0.01
    labels = torch.arange(32).view(32, 1).expand(32, 32)       # each row its own label
    assert torch.equal(to_grid(labels, 8, labels=True)[:, 0], torch.arange(8) * 4 + 2.0)   # the footprint's centre


def test_brain_splits_lie_at_least_4_mm_apart():
    """No training level is a near-twin (1-3 mm) of a test or valid level, nor a valid level of a test
    one; both brain sets share the levels, so training on the synthetic set sees no real test slice."""
    from rl_i2it.data.pairs import ALL_LEVELS, brain_levels
    levels = {s: brain_levels(s) for s in ("train", "valid", "test")}
    assert [len(levels[s]) for s in ("train", "valid", "test")] == [15, 10, 15]
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert min(abs(x - y) for x in levels[a] for y in levels[b]) >= 4, (a, b)
    assert sorted(sum(levels.values(), [])) == ALL_LEVELS and len(set(ALL_LEVELS)) == 40


def test_slice_labels_shrink_at_the_footprints_centre():
    from rl_i2it.data.pairs import _slices_to
    labels = np.tile(np.arange(32, dtype=np.int16), (1, 32, 1))         # each column its own label
    small = _slices_to(labels, (slice(0, 32), slice(0, 32)), 8, labels=True)
    assert torch.equal(small[0, 0], torch.arange(8) * 4 + 2.0)         # legacy nearest took 0, 4, ...


def test_resample_offset_moves_where_each_voxel_samples():
    """``offset`` (source voxels, per target voxel) adds to the world mapping: a constant offset of
    (2, -1) on the same grid is the array shifted, and it composes with a change of grid."""
    from rl_i2it.data.pairs import resample
    rng = np.random.default_rng(0)
    arr = rng.random((12, 10)).astype(np.float32)
    offset = np.stack([np.full((12, 10), 2.0), np.full((12, 10), -1.0)]).astype(np.float32)
    out = resample(arr, np.eye(4), np.eye(4), (12, 10), offset=offset)
    assert np.allclose(out[:10, 1:], arr[2:, :-1], atol=1e-6) and (out[10:] == 0).all()       # zero outside
    labels = resample(rng.integers(0, 4, (12, 10)), np.eye(4), np.eye(4), (12, 10), labels=True, offset=offset)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    target = np.diag([2.0, 2.0, 1.0, 1.0])                  # a coarser grid: voxel (i, j) is source (2i, 2j)
    half = resample(arr, np.eye(4), target, (5, 5), offset=offset[:, :5, :5])
    i, j = np.mgrid[:5, :5]
    expected = np.where(2 * j - 1 >= 0, arr[2 * i + 2, (2 * j - 1).clip(0)], 0)          # column -1: outside
    assert np.allclose(half, expected, atol=1e-6)


def test_manifest_split_column_gives_each_split_its_rows(tmp_path):
    """A ``split`` column (any case; an empty cell is train) gives train, valid and test their own
    rows; without one every row serves every split; an unknown value or an empty split is refused."""
    rng = np.random.default_rng(1)
    for name in ("a", "b", "c"):
        write_nifti(tmp_path / f"{name}.nii.gz", rng.random((12, 12)).astype(np.float32), np.eye(4))
    (tmp_path / "p.csv").write_text("moving,fixed,split\na.nii.gz,b.nii.gz,train\nb.nii.gz,c.nii.gz,\n"
                                    "c.nii.gz,a.nii.gz, Test\n")
    train = manifest_pairs(tmp_path / "p.csv", 8, split="train")
    test = load_pairs(f"manifest:{tmp_path / 'p.csv'}", "test", size=8)
    every = manifest_pairs(tmp_path / "p.csv", 8)
    assert (len(train), len(test), len(every)) == (2, 1, 3)
    assert torch.equal(test.moving[0], every.moving[2]) and torch.equal(train.fixed, every.fixed[:2])
    with pytest.raises(UserError, match="no pairs of the valid split"):
        load_pairs(f"manifest:{tmp_path / 'p.csv'}", "valid", size=8)
    (tmp_path / "q.csv").write_text("moving,fixed,split\na.nii.gz,b.nii.gz,training\n")
    with pytest.raises(UserError, match="the split column holds 'training'"):
        manifest_pairs(tmp_path / "q.csv", 8, split="train")
    (tmp_path / "r.csv").write_text("moving,fixed\na.nii.gz,b.nii.gz\nb.nii.gz,c.nii.gz\n")
    assert len(load_pairs(f"manifest:{tmp_path / 'r.csv'}", "test", size=8)) == 2
    (tmp_path / "e.csv").write_text("moving,fixed,split\na.nii.gz,b.nii.gz,\nb.nii.gz,c.nii.gz,\n")   # all train
    assert len(load_pairs(f"manifest:{tmp_path / 'e.csv'}", "train", size=8)) == 2
    with pytest.raises(UserError, match="no pairs of the test split"):
        load_pairs(f"manifest:{tmp_path / 'e.csv'}", "test", size=8)


def test_registration_task_reads_manifest_pairs_voxel_to_voxel(tmp_path):
    """``task_options.by_voxel`` trains on a manifest voxel to voxel (as ``register --by-voxel``),
    where the headers would place the moving image elsewhere; refused for our own sets."""
    from rl_i2it.tasks.registration import RegistrationTask
    rng = np.random.default_rng(2)
    shifted = np.eye(4)
    shifted[0, 3] = 6.0
    write_nifti(tmp_path / "m.nii.gz", rng.random((16, 16)).astype(np.float32), shifted)
    write_nifti(tmp_path / "f.nii.gz", rng.random((16, 16)).astype(np.float32), np.eye(4))
    (tmp_path / "p.csv").write_text("moving,fixed\nm.nii.gz,f.nii.gz\n")
    opts = {"pairs": f"manifest:{tmp_path / 'p.csv'}", "size": 16, "widths": [4, 8]}
    by_voxel = RegistrationTask({**opts, "by_voxel": True}).pairs("train")
    by_world = RegistrationTask(opts).pairs("train")
    assert torch.equal(by_voxel.moving, manifest_pairs(tmp_path / "p.csv", 16, by_voxel=True).moving)
    assert not torch.equal(by_voxel.moving, by_world.moving)
    assert (by_world.moving[0, 0, :6] == 0).all() and (by_voxel.moving[0, 0, :6] > 0).any()  # 6 rows uncovered by world
    with pytest.raises(UserError, match="by_voxel is for your own pairs"):
        RegistrationTask({"by_voxel": True})


def test_the_affine_fits_margin_reaches_one_distance_along_every_axis():
    """``register --affine`` looks a quarter of the fixed image's longest side beyond it along every
    axis: along the short side of a 64 x 24 mm crop too (a quarter of each axis left 6 mm there,
    and an 8 mm shift across it was fitted as a stretch)."""
    from rl_i2it.data.pairs import margin_beyond, model_grid_affine
    from rl_i2it.data.volumes import Volume
    thin = Volume(np.zeros((64, 24), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    assert margin_beyond(thin, 32) == (8, 22)                   # 16 mm: 8 voxels of 2 mm, 22 of 0.75 mm
    assert margin_beyond(Volume(np.zeros((300, 16), np.float32), np.eye(4)), 32) == (8, 32)   # at most the grid
    corner = model_grid_affine(thin, 32, (8, 22)) @ np.array([0, 0, 0, 1.0])
    assert np.allclose(corner[:2], [0.5 - 8 * 2, -0.125 - 22 * 0.75])   # the first model voxels' centres, 8 x 2 mm
    # and 22 x 0.75 mm before
