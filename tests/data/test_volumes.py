"""Readers and writers for NIfTI, MRC and PNG, manifests, and the registry fetchers' error paths."""
from pathlib import Path

import numpy as np
import pytest

from rl_i2it.data import volumes
from rl_i2it.data.volumes import read_manifest, read_volume, write_nifti
from rl_i2it.errors import UserError

AFFINE = np.array([[2.0, 0, 0, -10], [0, 1.5, 0, 4], [0, 0, 1, 7], [0, 0, 0, 1]])


def test_nifti_round_trip_keeps_affine_and_values(tmp_path):
    a = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32)
    write_nifti(tmp_path / "a.nii.gz", a, AFFINE)
    v = read_volume(tmp_path / "a.nii.gz")
    assert v.array.shape == (6, 7, 5) and np.allclose(v.array, a) and np.allclose(v.affine, AFFINE)
    write_nifti(tmp_path / "s.nii.gz", a[:, :, :1], AFFINE)                          # a 2D slice
    assert read_volume(tmp_path / "s.nii.gz").array.shape == (6, 7)
    write_nifti(tmp_path / "f.nii.gz", np.zeros((6, 7, 5, 3), np.float32), AFFINE)   # a vector field
    import nibabel as nib
    assert nib.load(str(tmp_path / "f.nii.gz")).shape == (6, 7, 5, 3)
    for units, to_mm in (("meter", 1000.0), ("micron", 1e-3)):       # the world read in millimetres
        img = nib.Nifti1Image(a, np.diag([1 / to_mm] * 3 + [1]) @ AFFINE)  # AFFINE's mm in these units
        img.header.set_xyzt_units(units)
        nib.save(img, str(tmp_path / f"{units}.nii.gz"))
        assert np.allclose(read_volume(tmp_path / f"{units}.nii.gz").affine, AFFINE), units


def test_mrc_and_png_are_read(tmp_path):
    import mrcfile
    from PIL import Image
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    with mrcfile.new(str(tmp_path / "v.mrc")) as m:
        m.set_data(a)
        m.voxel_size = (1.0, 2.0, 3.0)                      # x, y, z in angstroms
        m.header.origin = (10.0, 20.0, 30.0)
    v = read_volume(tmp_path / "v.mrc")
    want = np.array([[0, 0, 1, 10], [0, 2, 0, 20], [3, 0, 0, 30], [0, 0, 0, 1]], float)   # [Z, Y, X] arrays
    assert np.array_equal(v.array, a) and np.allclose(v.affine, want), v.affine
    with mrcfile.new(str(tmp_path / "s.mrc")) as m:                                     # one section: 2D
        m.set_data(a[:1])
        m.voxel_size = 2.0
    s2 = read_volume(tmp_path / "s.mrc")
    assert s2.array.shape == (5, 6) and np.allclose(s2.affine[:3, :2], [[0, 2], [2, 0], [0, 0]])
    Image.fromarray((np.arange(72).reshape(9, 8) + 100).astype(np.uint8)).save(tmp_path / "s.png")
    p = read_volume(tmp_path / "s.png")
    assert p.array.shape == (9, 8) and p.array.max() == 171 and p.kind == "picture"
    assert np.array_equal(p.affine[:3, :2], [[0, -1], [-1, 0], [0, 0]])    # ITK's: x = column, y = row (LPS)
    Image.fromarray(np.full((1, 8), 200, np.uint8)).save(tmp_path / "line.png")
    with pytest.raises(UserError, match="too thin"):
        read_volume(tmp_path / "line.png")


def test_slices_stored_in_3d_are_2d_images_with_their_in_plane_axes(tmp_path):
    """X x Y x 1, X x 1 x Z and 1 x Y x Z NIfTI slices read as 2D; the affine's first two columns
    are the slice's own axes (a coronal slice's run along world x and z); a header whose third
    column is zero gets the slice's normal there, a singular 3D header is refused. Outputs on an
    X x Y x 1 slice's grid are written X x Y x 1 (x C), as the slice is stored."""
    import nibabel as nib

    from rl_i2it.data.volumes import voxel_volume
    a = np.diag([1.5, 2.0, 3.0, 1.0])
    a[:3, 3] = [5, 6, 7]
    for shape, cols in (((6, 7, 1), [0, 1]), ((6, 1, 7), [0, 2]), ((1, 6, 7), [1, 2])):
        write_nifti(tmp_path / "s.nii.gz", np.arange(42, dtype=np.float32).reshape(shape), a)
        v = read_volume(tmp_path / "s.nii.gz")
        assert v.array.shape == tuple(k for k in shape if k != 1)
        assert np.allclose(v.affine[:3, :2], a[:3, cols]) and np.allclose(v.affine[:3, 3], a[:3, 3])
        assert abs(voxel_volume(v.affine, 2) - np.prod(np.diag(a)[cols])) < 1e-9
        assert (v.header is not None) == (shape[-1] == 1)        # reordered axes: the header is not copied
        write_nifti(tmp_path / "out.nii.gz", np.zeros(v.array.shape + (2,), np.float32), v.affine, like=v)
        back = nib.load(str(tmp_path / "out.nii.gz"))                 # an output on this grid keeps its shape
        assert back.shape == (shape + (2,) if shape[-1] == 1 else v.array.shape + (2,))
        assert np.allclose(back.affine, a if shape[-1] == 1 else v.affine)
    from rl_i2it.data.volumes import read_labels_of
    write_nifti(tmp_path / "s.nii.gz", np.arange(42, dtype=np.float32).reshape(6, 7, 1), a)     # 3 mm thick
    thin = a.copy()
    thin[2, 2] = 1.0
    write_nifti(tmp_path / "l.nii.gz", np.ones((6, 7), np.int16), thin)     # its labels, saved as a plain 2D map
    assert read_labels_of(tmp_path / "l.nii.gz", read_volume(tmp_path / "s.nii.gz"), "labels").shape == (6, 7)
    thin[0, 3] += 1.5                                                         # one pixel over: elsewhere
    write_nifti(tmp_path / "l.nii.gz", np.ones((6, 7), np.int16), thin)
    with pytest.raises(UserError, match="places them elsewhere"):
        read_labels_of(tmp_path / "l.nii.gz", read_volume(tmp_path / "s.nii.gz"), "labels")
    flat = a.copy()
    flat[2, 2] = 0

    def sform_only(name, arr):                 # nibabel will not build a qform from a singular affine
        img = nib.Nifti1Image(arr, None)
        img.set_sform(flat, code=2)
        nib.save(img, str(tmp_path / name))
    sform_only("z0.nii.gz", np.arange(42, dtype=np.float32).reshape(6, 7))
    assert np.allclose(read_volume(tmp_path / "z0.nii.gz").affine[:3, 2], [0, 0, 1])
    sform_only("bad.nii.gz", np.arange(210, dtype=np.float32).reshape(6, 7, 5))
    with pytest.raises(UserError, match="affine is singular"):
        read_volume(tmp_path / "bad.nii.gz")


def test_outputs_copy_the_fixed_images_qform_and_sform(tmp_path):
    """An SPM-style image (a scanner qform and an aligned sform): outputs keep both and their codes."""
    import nibabel as nib
    q = np.diag([2.0, 2.0, 2.0, 1.0])
    sform = q.copy()
    sform[:3, 3] = [1, 2, 3]
    img = nib.Nifti1Image(np.arange(210, dtype=np.float32).reshape(5, 6, 7), sform)
    img.set_qform(q, code=1)
    img.set_sform(sform, code=2)
    nib.save(img, str(tmp_path / "f.nii.gz"))
    fixed = read_volume(tmp_path / "f.nii.gz")
    write_nifti(tmp_path / "out.nii.gz", np.zeros((5, 6, 7), np.float32), fixed.affine, like=fixed)
    h = nib.load(str(tmp_path / "out.nii.gz")).header
    assert int(h["qform_code"]) == 1 and int(h["sform_code"]) == 2
    assert np.allclose(h.get_qform(), q) and np.allclose(h.get_sform(), sform)


def test_bad_volumes_are_clear_errors(tmp_path):
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 2, 3] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan, np.eye(4))
    with pytest.raises(UserError, match="1 NaN"):
        read_volume(tmp_path / "nan.nii.gz")
    write_nifti(tmp_path / "flat.nii.gz", np.full((4, 4, 4), 7.0, np.float32), np.eye(4))
    with pytest.raises(UserError, match="every voxel is 7: a constant image has nothing to register"):
        read_volume(tmp_path / "flat.nii.gz")      # registered before, to a 15-voxel field from nothing
    write_nifti(tmp_path / "empty.nii.gz", np.zeros((4, 4, 4), np.int16), np.eye(4))
    with pytest.raises(UserError, match="empty"):
        read_volume(tmp_path / "empty.nii.gz", labels=True)
    write_nifti(tmp_path / "frac.nii.gz", np.full((4, 4, 4), 0.5, np.float32), np.eye(4))
    with pytest.raises(UserError, match="integers"):
        read_volume(tmp_path / "frac.nii.gz", labels=True)
    (tmp_path / "junk.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(UserError, match="cannot read"):
        read_volume(tmp_path / "junk.nii.gz")
    with pytest.raises(UserError, match="unknown image format"):
        read_volume(_touch(tmp_path / "a.xyz"))
    with pytest.raises(UserError, match="not found"):
        read_volume(tmp_path / "missing.nii.gz")


def test_picture_label_maps_keep_their_ids_and_odd_files_are_refused(tmp_path):
    import nibabel as nib
    from PIL import Image
    ids = np.zeros((6, 8), np.uint8)
    ids[1:3, 2:5], ids[4:, :3] = 1, 2
    pal = Image.fromarray(ids, "L").convert("P")                   # palette indices 0, 1, 2
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_volume(tmp_path / "p.png", labels=True).array, ids)
    Image.fromarray(ids > 0).save(tmp_path / "bit.png")          # a 1-bit mask: label 1
    assert np.array_equal(read_volume(tmp_path / "bit.png", labels=True).array, (ids > 0).astype(int))
    Image.fromarray(np.repeat(ids[..., None] * 40, 3, 2)).save(tmp_path / "g3.png")   # grey saved as RGB
    assert np.array_equal(read_volume(tmp_path / "g3.png", labels=True).array, ids * 40)
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[ids == 1], rgb[ids == 2] = (255, 0, 0), (0, 0, 255)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(UserError, match="colour .* label map"):
        read_volume(tmp_path / "rgb.png", labels=True)
    pages = [Image.fromarray((np.arange(48).reshape(6, 8) + v).astype(np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(UserError, match="holds 3 pages"):
        read_volume(tmp_path / "stack.tif")
    pages[0].save(tmp_path / "thumb.tif", save_all=True, append_images=[Image.new("L", (2, 2))])   # a thumbnail
    assert read_volume(tmp_path / "thumb.tif").array.max() == 57
    rgb24 = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb24, np.eye(4)), str(tmp_path / "rgb.nii.gz"))
    with pytest.raises(UserError, match="one real value per voxel"):
        read_volume(tmp_path / "rgb.nii.gz")
    write_nifti(tmp_path / "huge.nii.gz", np.full((4, 4, 4), 1e20, np.float32), np.eye(4))
    with pytest.raises(UserError, match="label ids from"):
        read_volume(tmp_path / "huge.nii.gz", labels=True)
    write_nifti(tmp_path / "rod.nii.gz", np.ones((6, 1, 1), np.float32), np.eye(4))
    with pytest.raises(UserError, match="rod.nii.gz: expected a 2D or 3D image"):
        read_volume(tmp_path / "rod.nii.gz")


def _touch(p):
    p.write_text("")
    return p


def test_manifest_resolves_relative_paths_and_optional_labels(tmp_path):
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels,fixed_labels\nm.nii.gz,/abs/f.nii.gz,,\n")
    rows = read_manifest(tmp_path / "pairs.csv")
    assert rows[0]["moving"] == tmp_path / "m.nii.gz" and str(rows[0]["fixed"]) == "/abs/f.nii.gz"
    assert rows[0]["moving_labels"] is None
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="moving,fixed"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "none.csv").write_text("moving,fixed\n")
    with pytest.raises(UserError, match="no pairs"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "spaced.csv").write_text('moving, fixed\n"my m.nii.gz" , "~/f.nii.gz"\n')   # as hand-typed
    row = read_manifest(tmp_path / "spaced.csv")[0]
    assert row["moving"] == tmp_path / "my m.nii.gz" and row["fixed"] == Path.home() / "f.nii.gz"
    (tmp_path / "tilde.csv").write_text("moving,fixed\n~scan.nii.gz,f.nii.gz\n")      # a name, not a home
    assert read_manifest(tmp_path / "tilde.csv")[0]["moving"] == tmp_path / "~scan.nii.gz"
    (tmp_path / "semi.csv").write_text("moving;fixed\nm.nii.gz;f.nii.gz\n")     # a spreadsheet's locale
    with pytest.raises(UserError, match="split by semicolons: save it with commas"):
        read_manifest(tmp_path / "semi.csv")
    (tmp_path / "typo.csv").write_text("moving,fixed,moving_label,fixed_label,subject\nm.nii.gz,f.nii.gz,a,b,7\n")
    with pytest.raises(UserError, match="'moving_label' .* did you mean moving_labels"):   # labels dropped before
        read_manifest(tmp_path / "typo.csv")
    (tmp_path / "spilt.csv").write_text("moving,fixed,spilt\nm.nii.gz,f.nii.gz,test\n")
    with pytest.raises(UserError, match="did you mean split"):          # a test row trained on before
        read_manifest(tmp_path / "spilt.csv", text=("split",))
    (tmp_path / "extra.csv").write_text("moving,fixed,subject,age,moving_id,fixed_id,moving_mask,fixed2\n"
                                        "m.nii.gz,f.nii.gz,7,40,a,b,c,d\n")
    assert read_manifest(tmp_path / "extra.csv")[0]["moving"] == tmp_path / "m.nii.gz"   # a user's own columns
    (tmp_path / "comma.csv").write_text("moving,fixed\nscan, 1.nii.gz,f.nii.gz\nm.nii.gz,f.nii.gz,,\n")
    with pytest.raises(UserError, match=r"row 1 \(line 2\): more cells than the header"):   # read as 'scan' and ' 1.nii.gz'
        read_manifest(tmp_path / "comma.csv")
    (tmp_path / "trail.csv").write_text("moving,fixed\nm.nii.gz,f.nii.gz,,\n")             # a spreadsheet's commas
    assert read_manifest(tmp_path / "trail.csv")[0]["fixed"] == tmp_path / "f.nii.gz"
    (tmp_path / "movng.csv").write_text("movng,fixed\nm.nii.gz,f.nii.gz\n")   # a required column's typo
    with pytest.raises(UserError, match="'movng' .* did you mean moving"):   # (was: "needs a header with ...")
        read_manifest(tmp_path / "movng.csv")
    (tmp_path / "gaps.csv").write_text("moving,fixed\nm.nii.gz,f.nii.gz\n\n   \n,,\nm2.nii.gz,\n")
    with pytest.raises(UserError, match=r"gaps.csv, row 2 \(line 6\): every row needs moving and fixed"):
        read_manifest(tmp_path / "gaps.csv")            # blank, spaces-only and empty-cell lines skipped alike


def test_fetch_refuses_unknown_source_and_explains_missing_apt(monkeypatch):
    with pytest.raises(UserError, match="unknown registration source"):
        volumes.fetch_source("nope")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="apt-get"):
        volumes.fetch_source("mricron")


def _itk_resample(moving: np.ndarray, field_lps: np.ndarray, affine: np.ndarray, moving_affine: np.ndarray
                  ) -> np.ndarray:
    """What ITK's resampler does with a displacement field, written out here: fixed voxel x -> its
    world point (LPS) p -> p + d(x) -> the moving image's voxel there (its own affine), n-linear."""
    n = moving.ndim
    flip = np.diag([-1.0, -1.0, 1.0])
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in moving.shape], indexing="ij"), -1).astype(float)
    d = np.zeros(idx.shape[:-1] + (3,))
    d[..., :n] = field_lps
    lps = idx @ (flip @ affine[:3, :n]).T + flip @ affine[:3, 3] + d
    ras = lps @ flip - moving_affine[:3, 3]
    src = np.linalg.lstsq(moving_affine[:3, :n], ras.reshape(-1, 3).T, rcond=None)[0].T.reshape(idx.shape)
    lo = np.floor(src).astype(int)
    out = np.zeros(moving.shape)
    for corner in np.ndindex(*(2,) * n):
        c = lo + np.array(corner)
        w = np.prod(1 - np.abs(src - c), -1)
        c = np.clip(c, 0, np.array(moving.shape) - 1)
        out += w * moving[tuple(c[..., i] for i in range(n))]
    return out


@pytest.mark.parametrize("nd", [2, 3])
def test_itk_field_resamples_the_moving_image_as_our_warp_does(tmp_path, nd):
    """``field_itk.nii.gz`` (LPS millimetres, ANTs' layout) on a rotated, flipped, anisotropic grid:
    ITK's reading of it (written out in ``_itk_resample``) gives our warped image. The same file
    fed to ANTs' ``apply_transforms`` matched ours to 1e-6 (session 19, antspyx 0.6; the next test)."""
    import nibabel as nib
    import torch
    import torch.nn.functional as F
    from rl_i2it.data.volumes import write_itk_field
    from rl_i2it.ops.warp import warp
    shape = (14, 16, 12)[:nd]
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    moving = sum(np.sin((i + 2) * g + i) for i, g in enumerate(grids)).astype(np.float32)
    coarse = torch.randn(1, nd, *(3,) * nd, generator=torch.Generator().manual_seed(nd))
    field = F.interpolate(coarse, size=shape, mode="bilinear" if nd == 2 else "trilinear", align_corners=True)[0]
    ours = warp(torch.from_numpy(moving)[None, None], field[None])[0, 0].numpy()
    th = 0.4
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.2, 0.9, 2.0])
    affine[:3, 3] = [10, -5, 3]
    if nd == 2:
        affine[:3, 2], affine[2, :3] = [0, 0, 1], [0, 0, 1]
    other = affine.copy()                     # a moving image on another grid (registered voxel to voxel)
    other[:3, :3] *= 1.1
    other[:3, 3] += [3, 1, -2]
    inner = tuple(slice(2, -2) for _ in range(nd))
    for moving_affine in (affine, other):
        write_itk_field(tmp_path / "f.nii.gz", field.numpy(), affine, moving_affine)
        img = nib.load(str(tmp_path / "f.nii.gz"))
        assert img.shape == shape + (1,) * (4 - nd) + (nd,) and img.header.get_intent()[0] == "vector"
        assert np.allclose(img.affine, affine)
        stored = np.asarray(img.dataobj).reshape(shape + (nd,))
        assert np.abs(_itk_resample(moving, stored, affine, moving_affine) - ours)[inner].max() < 1e-4
        flipped = stored * np.array([-1, -1, 1][:nd])                                   # RAS instead of LPS
        assert np.abs(_itk_resample(moving, flipped, affine, moving_affine) - ours)[inner].max() > 0.1


def test_itk_field_in_ants(tmp_path):
    """With antspyx installed (`pip install .[baselines]`): ANTs resamples the moving image through
    our ``field_itk.nii.gz`` to our warped image (a child process: ITK and torch clash in one)."""
    import subprocess
    import sys
    import torch
    from rl_i2it.baselines import classical
    from rl_i2it.data.volumes import write_itk_field
    from rl_i2it.ops.warp import warp
    if not classical.available("syn"):
        pytest.skip(classical.missing_line("syn"))
    g = np.random.default_rng(0)
    moving = np.cumsum(np.cumsum(g.normal(size=(12, 14, 10)), 0), 1).astype(np.float32)
    field = torch.from_numpy(g.normal(scale=0.8, size=(3, 12, 14, 10)).astype(np.float32))
    th = 0.4                                  # rotated, flipped, anisotropic grids
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    affine, moving_affine = np.eye(4), np.eye(4)
    affine[:3, :3], moving_affine[:3, :3] = rot @ np.diag([-1.5, 1.0, 2.5]), np.diag([-1.2, 1.1, 2.0])
    affine[:3, 3], moving_affine[:3, 3] = [4, 2, -7], [1, 5, -3]
    write_nifti(tmp_path / "f.nii.gz", np.zeros(moving.shape, np.float32), affine)
    write_nifti(tmp_path / "m.nii.gz", moving, moving_affine)
    write_itk_field(tmp_path / "d.nii.gz", field.numpy(), affine, moving_affine)
    code = ("import ants, numpy as np; f, m = ants.image_read('f.nii.gz'), ants.image_read('m.nii.gz'); "
            "np.save('w.npy', ants.apply_transforms(f, m, ['d.nii.gz'], interpolator='linear').numpy())")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120)
    ours = warp(torch.from_numpy(moving)[None, None], field[None])[0, 0].numpy()
    src = np.stack(np.meshgrid(*[np.arange(s) for s in moving.shape], indexing="ij")) + field.numpy()
    inside = ((src >= 0) & (src <= np.array(moving.shape)[:, None, None, None] - 1)).all(0)  # borders differ
    assert inside.mean() > 0.5 and np.abs(np.load(tmp_path / "w.npy") - ours)[inside].max() < 1e-4

    # a smooth moving image on another grid: `register` puts it on the fixed grid by the headers first;
    # ANTs takes the original through the field written with the fixed affine alone
    from rl_i2it.data.pairs import onto_fixed_grid
    from rl_i2it.data.volumes import Volume
    grids = np.meshgrid(*[np.linspace(-1, 1, k) for k in (24, 26, 20)], indexing="ij")
    smooth = sum(np.sin((i + 1.5) * gr + i) for i, gr in enumerate(grids)).astype(np.float32)
    fixed_shape, fixed_affine, moving_affine = (30, 28, 26), np.eye(4), np.diag([1.3, 1.1, 1.6, 1.0])
    moving_affine[:3, 3] = [2, -1, 3]
    moved, _, _, _ = onto_fixed_grid(Volume(np.zeros(fixed_shape, np.float32), fixed_affine), Volume(smooth, moving_affine))
    field = 0.7 * torch.nn.functional.interpolate(torch.randn(1, 3, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
                                                  size=fixed_shape, mode="trilinear", align_corners=True)[0]
    write_nifti(tmp_path / "f.nii.gz", np.zeros(fixed_shape, np.float32), fixed_affine)
    write_nifti(tmp_path / "m.nii.gz", smooth, moving_affine)
    write_itk_field(tmp_path / "d.nii.gz", field.numpy(), fixed_affine)
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120)
    ours = warp(torch.from_numpy(moved)[None, None], field[None])[0, 0].numpy()
    x = np.stack(np.meshgrid(*[np.arange(k) for k in fixed_shape], indexing="ij")) + field.numpy()
    back = np.linalg.inv(moving_affine)
    src = np.tensordot(back[:3, :3], x, axes=([1], [0])) + back[:3, 3, None, None, None]
    inside = np.all([(src[i] > 1.5) & (src[i] < smooth.shape[i] - 2.5) & (x[i] >= 0) & (x[i] <= fixed_shape[i] - 1)
                     for i in range(3)], 0)              # away from both images' borders
    assert inside.mean() > 0.3
    assert np.abs(np.load(tmp_path / "w.npy") - ours)[inside].max() < 0.01 * np.ptp(smooth)   # two interpolations vs one

    # a PNG pair: the field on the picture's own ITK world, so ANTs takes the PNGs themselves
    from PIL import Image
    rows, cols = np.mgrid[:24, :30]
    picture = (120 + 100 * np.sin(rows / 4.0) * np.cos(cols / 5.0)).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "m.png")
    png = read_volume(tmp_path / "m.png")
    field = torch.from_numpy(g.normal(scale=0.8, size=(2, 24, 30)).astype(np.float32))
    write_itk_field(tmp_path / "d.nii.gz", field.numpy(), png.affine)
    subprocess.run([sys.executable, "-c", code.replace("f.nii.gz", "m.png").replace("m.nii.gz", "m.png")],
                   cwd=tmp_path, check=True, timeout=120)
    ours = warp(torch.from_numpy(png.array)[None, None], field[None])[0, 0].numpy()
    src = np.stack(np.meshgrid(np.arange(24), np.arange(30), indexing="ij")) + field.numpy()
    inside = ((src >= 0) & (src <= np.array([23, 29])[:, None, None])).all(0)
    theirs = np.load(tmp_path / "w.npy")
    theirs = theirs.T if theirs.shape == (30, 24) else theirs             # ANTs' numpy() of a picture is [x, y]
    assert inside.mean() > 0.5 and np.abs(theirs - ours)[inside].max() < 1e-3


def test_a_header_without_orientation_is_placed_as_itk_reads_it(tmp_path):
    """qform and sform codes 0: origin 0 and voxel axes along L, P, S, as ITK (antspyx: origin 0,
    identity direction), not nibabel's guess (x flipped, centred), with which the ITK field's y part
    pointed the other way in ANTs (a review found it)."""
    import subprocess
    import sys
    import nibabel as nib
    import torch
    from rl_i2it.baselines import classical
    from rl_i2it.data.volumes import write_itk_field
    from rl_i2it.ops.warp import warp
    g = np.random.default_rng(2)
    moving = np.cumsum(np.cumsum(g.normal(size=(12, 14, 10)), 0), 1).astype(np.float32)
    for name, arr in (("f.nii.gz", np.arange(1680, dtype=np.float32).reshape(12, 14, 10)), ("m.nii.gz", moving)):
        img = nib.Nifti1Image(arr, None)
        img.header.set_zooms((2.0, 3.0, 4.0))
        img.set_qform(None, code=0)
        img.set_sform(None, code=0)
        nib.save(img, str(tmp_path / name))
    fixed = read_volume(tmp_path / "f.nii.gz")
    assert np.allclose(fixed.affine, np.diag([-2.0, -3.0, 4.0, 1.0]))
    from rl_i2it.data.volumes import read_labels_of        # labels saved by nibabel with its guessed affine:
    lab = (np.arange(1680).reshape(12, 14, 10) % 3).astype(np.int16)          # still the image's grid
    nib.save(nib.Nifti1Image(lab, nib.load(str(tmp_path / "f.nii.gz")).affine), str(tmp_path / "l.nii.gz"))
    assert np.array_equal(read_labels_of(tmp_path / "l.nii.gz", fixed, "labels"), lab)
    if not classical.available("syn"):
        pytest.skip(classical.missing_line("syn"))
    field = torch.from_numpy(g.normal(scale=0.8, size=(3, 12, 14, 10)).astype(np.float32))
    write_itk_field(tmp_path / "d.nii.gz", field.numpy(), fixed.affine, like=fixed)
    code = ("import ants, numpy as np; f, m = ants.image_read('f.nii.gz'), ants.image_read('m.nii.gz'); "
            "np.save('w.npy', ants.apply_transforms(f, m, ['d.nii.gz'], interpolator='linear').numpy())")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=120)
    ours = warp(torch.from_numpy(moving)[None, None], field[None])[0, 0].numpy()
    src = np.stack(np.meshgrid(*[np.arange(s) for s in moving.shape], indexing="ij")) + field.numpy()
    inside = ((src >= 0) & (src <= np.array(moving.shape)[:, None, None, None] - 1)).all(0)
    assert inside.mean() > 0.5 and np.abs(np.load(tmp_path / "w.npy") - ours)[inside].max() < 1e-3

def test_itk_caveats_name_headers_itk_may_read_otherwise():
    from rl_i2it.data.volumes import PICTURE_AFFINE, Volume, itk_caveats
    assert itk_caveats(Volume(np.zeros((4, 5)), PICTURE_AFFINE)) == []
    assert itk_caveats(Volume(np.zeros((4, 5, 6)), np.diag([2.0, -1.0, 3.0, 1.0]))) == []
    sagittal = np.array([[0, 0, 1.0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])   # in-plane axes: world y, z
    assert "not axial" in itk_caveats(Volume(np.zeros((4, 5)), sagittal))[0]
    assert "part along z (in a coronal or sagittal slice's own plane)" in itk_caveats(Volume(np.zeros((4, 5)), sagittal))[0]
    sheared = np.eye(4)
    sheared[0, 1] = 0.3
    assert "sheared" in itk_caveats(Volume(np.zeros((4, 5, 6)), sheared))[0]
    stored_3d = itk_caveats(Volume(np.zeros((4, 5)), np.eye(4), file_shape=(4, 5, 1)))    # X x Y x 1
    assert len(stored_3d) == 1 and "2D NIfTI files" in stored_3d[0]
