"""Readers and writers for NIfTI, MRC and PNG, manifests, and the registry fetchers' error paths."""
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


def test_mrc_and_png_are_read(tmp_path):
    import mrcfile
    from PIL import Image
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    with mrcfile.new(str(tmp_path / "v.mrc")) as m:
        m.set_data(a)
        m.voxel_size = 2.0
    v = read_volume(tmp_path / "v.mrc")
    assert np.array_equal(v.array, a) and np.allclose(np.diag(v.affine)[:3], 2.0)
    Image.fromarray(np.full((9, 8), 200, np.uint8)).save(tmp_path / "s.png")
    p = read_volume(tmp_path / "s.png")
    assert p.array.shape == (9, 8) and p.array.max() == 200 and np.array_equal(p.affine, np.eye(4))


def test_bad_volumes_are_clear_errors(tmp_path):
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 2, 3] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan, np.eye(4))
    with pytest.raises(UserError, match="1 NaN"):
        read_volume(tmp_path / "nan.nii.gz")
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


def test_fetch_refuses_unknown_source_and_explains_missing_apt(monkeypatch):
    with pytest.raises(UserError, match="unknown registration source"):
        volumes.fetch_source("nope")
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UserError, match="apt-get"):
        volumes.fetch_source("mricron")
