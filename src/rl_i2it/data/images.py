"""Images in and out with Pillow: float tensors in [0, 1], ``[C, H, W]``."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from .cache import refetch_hint


def check_image_file(path: str | Path) -> Path:
    """``path`` as a ``Path``; a missing file or a folder is a ``UserError`` saying which."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is a folder, not an image" if path.is_dir() else f"image not found: {path}")
    return path


def natural_key(path: str | Path) -> list:
    """Sort key putting ``frame_2`` before ``frame_10`` (runs of digits compared as numbers)."""
    return [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))], str(path)]   # f1, f01: fixed order


def image_files(folder: Path, suffixes: tuple, recursive: bool = False) -> list[Path]:
    """The files of ``folder`` (and of its subfolders with ``recursive``) whose suffix (any case)
    is in ``suffixes``, in natural order (``natural_key``); hidden ones skipped (``.name``, and
    the ``._name`` files macOS leaves on other disks, which are no images)."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((p for p in found if p.is_file() and p.suffix.lower() in suffixes
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)), key=natural_key)


def as_unit_frame(x, what: str, channels: int, min_side: int = 1) -> torch.Tensor:
    """One image ``[channels, H, W]`` (a video frame) as ``as_unit_images`` takes it, returned as
    ``[1, channels, H, W]``; a numpy or channels-last frame is told how to make one."""
    if isinstance(x, np.ndarray) and x.ndim == 3 and x.shape[2] == channels:
        raise TypeError(f"{what} must be a torch.Tensor [{channels}, H, W]: torch.from_numpy(frame).permute(2, 0, 1) "
                        f"makes one of a numpy [H, W, {channels}] frame")
    if isinstance(x, torch.Tensor) and x.dim() != 3:
        raise ValueError(f"{what} must be one frame [{channels}, H, W], got shape {tuple(x.shape)}")
    if isinstance(x, torch.Tensor) and x.shape[0] not in (1, channels) and x.shape[2] == channels:
        raise ValueError(f"{what} is {tuple(x.shape)}: frames are [{channels}, H, W] "
                         f"(channels last? frame.permute(2, 0, 1))")
    return as_unit_images(x[None] if isinstance(x, torch.Tensor) else x, what, channels, min_side=min_side)


def as_unit_images(x, what: str, channels: int, size=None, dims: int = 2, min_side: int = 1) -> torch.Tensor:
    """A library caller's images as float32 ``[B, channels, *S]`` in [0, 1] (detached), or a
    ``TypeError`` / ``ValueError`` naming ``what``: the first line of every inference function.
    uint8 is read as 0-255 and bool as 0/1; floats must lie in [0, 1] (up to 0.2 beyond, as bicubic
    resizing leaves, is clamped; 0-255 floats are refused, they would pass for white, and [-1, 1]
    ones, which would lose their dark half); one channel
    is repeated where three are wanted (a grey photo); ``size``: the model's side or sides (None:
    any, down to ``min_side``). No copy of float32 images already in [0, 1]."""
    axes = "H, W" if dims == 2 else "D, H, W"
    if not isinstance(x, torch.Tensor):
        hint = ": torch.from_numpy(array) makes one" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{what} must be a torch.Tensor [B, {channels}, {axes}] in [0, 1], got {type(x).__name__}{hint}")
    if x.dim() != dims + 2:
        hint = " (one image: add the batch axis, x[None])" if x.dim() == dims + 1 else ""
        raise ValueError(f"{what} must be [B, {channels}, {axes}], got shape {tuple(x.shape)}{hint}")
    if len(x) == 0:
        raise ValueError(f"{what} holds no image (shape {tuple(x.shape)})")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.dtype == torch.bool:
        x = x.float()
    elif not x.is_floating_point():
        raise TypeError(f"{what} has dtype {x.dtype}: give floats in [0, 1] or uint8 in 0-255")
    x = x.detach().float()
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (lo >= -0.2 and hi <= 1.2):                     # NaN fails too
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{what} holds NaN or infinite values: images are floats in [0, 1]")
        hint = ("[-1, 1] ones: give (x + 1) / 2" if lo >= -1.01 and hi <= 1.01 else
                "0-255 ones: divide by 255, or give uint8" if hi > 2 else "clamp them, or rescale")
        raise ValueError(f"{what} holds values in [{lo:.4g}, {hi:.4g}]: images are floats in [0, 1] ({hint})")
    if x.shape[1] != channels:
        if not (x.shape[1] == 1 and channels == 3):
            last = " (channels last? x.permute(0, 3, 1, 2))" if dims == 2 and x.shape[-1] == channels else ""
            raise ValueError(f"{what} has {x.shape[1]} channels {tuple(x.shape)}: this model takes {channels}{last}")
        x = x.expand(-1, 3, *x.shape[2:])
    if size is not None:
        want = (size,) * dims if isinstance(size, int) else tuple(size)
        if tuple(x.shape[2:]) != want:
            raise ValueError(f"{what} is {'x'.join(map(str, x.shape[2:]))}: this model takes "
                             f"{'x'.join(map(str, want))} (resize first, e.g. torch.nn.functional.interpolate)")
    if min(x.shape[2:]) < min_side:
        raise ValueError(f"{what} is {'x'.join(map(str, x.shape[2:]))}: it needs at least {min_side} pixels a side")
    return x if lo >= 0 and hi <= 1 else x.clamp(0, 1)


def as_unit_pairs(x, y, what: tuple[str, str], channels: int, size=None, dims: int = 2):
    """Two batches that go together image by image (fixed and moving, outputs and their inputs):
    each as ``as_unit_images``, and of one shape, or a ``ValueError`` saying so."""
    x, y = (as_unit_images(t, name, channels, size, dims) for t, name in zip((x, y), what))
    if x.shape != y.shape:
        raise ValueError(f"{what[0]} {tuple(x.shape)} and {what[1]} {tuple(y.shape)} differ: give pairs, "
                         f"one {what[1]} of the same size per {what[0]}")
    return x, y


def read_image(path: str | Path, mode: str = "L") -> torch.Tensor:
    """``[C, H, W]`` float in [0, 1]; ``mode`` 'L' (grey) or 'RGB'."""
    path = check_image_file(path)
    try:
        with Image.open(path) as im:
            arr = pil_to_unit(im, mode)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    t = torch.from_numpy(arr)
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def read_alpha(path: str | Path, colour_key: bool = True) -> torch.Tensor | None:
    """An image's transparency ``[1, H, W]`` in [0, 1], upright as ``read_image`` reads it, or None
    where every pixel is opaque: what ``stylize`` puts back on its result (a logo, a cut-out).
    ``colour_key``: a palette or colour key's transparency (PNG's tRNS) counts too."""
    path = check_image_file(path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and not (colour_key and "transparency" in im.info):
                return None
            a = np.asarray(ImageOps.exif_transpose(im).convert("RGBA"), np.float32)[..., 3] / 255
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    return None if a.min() >= 1 else torch.from_numpy(a)[None]


class BadPixels(ValueError):
    """An image whose pixel values are not numbers (a float TIFF holding NaN or infinity)."""


READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)
"""What Pillow (and ``pil_to_unit``) raise for a file that is no image it can read."""


def unreadable(path, exc: Exception) -> UserError:
    """The one-line error for ``path`` failing with ``exc`` (one of ``READ_ERRORS``)."""
    if isinstance(exc, (BadPixels, Image.DecompressionBombError)):      # their text says what is wrong
        return UserError(f"{path}: {exc}")
    return UserError(f"not a readable image: {path} ({exc.__class__.__name__}){refetch_hint(path)}")


def pil_to_unit(im: Image.Image, mode: str) -> np.ndarray:
    """A Pillow image as float32 ``H x W`` (``mode`` 'L') or ``H x W x 3`` ('RGB') in [0, 1], upright
    (its EXIF orientation applied, as viewers show a phone's photo). 16-bit grey ('I;16...') is
    scaled by 65535, 32-bit integer grey ('I') by 65535 or its maximum when larger, float grey
    ('F') clipped to [0, 1] or scaled by its maximum: ``convert('L')`` would clip each to 255."""
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I") or im.mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        if not np.isfinite(grey).all():
            raise BadPixels("holds NaN or infinite pixel values (replace them first)")
        top = 65535.0 if im.mode.startswith("I;16") else float(np.nanmax(grey, initial=0.0))
        if im.mode == "I":
            top = max(top, 65535.0)
        elif im.mode == "F" and top <= 1:
            top = 1.0
        grey = np.clip(grey / max(top, 1e-12), 0, 1)
        return grey if mode == "L" else np.repeat(grey[..., None], 3, axis=2)
    if mode == "L":                      # a digit or a mask: its shape may live in the alpha alone
        im = flatten_alpha(im)
    return np.asarray(im.convert(mode), dtype=np.float32) / 255.0       # colour: transparent pixels keep their RGB


def flatten_alpha(im: Image.Image) -> Image.Image:
    """A picture with transparency laid on the background its visible pixels stand out from: white
    under dark ones (a black digit drawn on a transparent layer), black under light ones (a white
    shape or mask whose form is only in its alpha: ``convert`` would drop the alpha and leave it all
    white). Opaque pictures and those without alpha are returned as they are (8-bit values exact).
    For grey reads (digits, masks); colour reads keep a transparent pixel's RGB (``inpaint`` reads
    an erased region as its hole, with ``--mask`` as its colour)."""
    if not (im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)):
        return im
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    alpha, rgb = rgba[..., 3:], rgba[..., :3]
    if alpha.min() >= 1:
        return im
    luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    shown = float((luminance * alpha[..., 0]).sum() / max(float(alpha.sum()), 1e-6))     # of the visible pixels
    background = 0.0 if shown > 0.5 else 1.0
    return Image.fromarray(np.round((rgb * alpha + background * (1 - alpha)) * 255).astype(np.uint8))


def pil_uint8(im: Image.Image, mode: str) -> Image.Image:
    """A Pillow image as ``pil_to_unit`` reads it (upright; high-bit grey scaled, where ``convert``
    alone makes a 16-bit picture white), in ``mode`` ('L' or 'RGB') at 8 bits (8-bit values exact)."""
    return Image.fromarray(np.round(pil_to_unit(im, mode) * 255).astype(np.uint8))


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def read_colour_image(path: str | Path) -> torch.Tensor:
    """``[3, H, W]`` in [0, 1]; a grey image is a ``UserError`` (a colour model cannot use it)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
    except READ_ERRORS:
        mode = None                 # read_image gives the error
    if mode in GREY_MODES:
        raise UserError(f"{path} is a grey image ({mode}): this model works on colour (RGB) images")
    return read_image(path, "RGB")


def read_transparent(path: str | Path) -> torch.Tensor | None:
    """``[1, H, W]`` bool: the pixels an image's alpha channel makes transparent (alpha < 128, as
    image editors and inpainting tools erase a hole), or None where it has none (no alpha band:
    a colour key, PNG's tRNS, is not read as one)."""
    alpha = read_alpha(path, colour_key=False)
    hole = None if alpha is None else alpha < 128 / 255
    return hole if hole is not None and hole.any() else None


def read_mask(path: str | Path, shape: tuple[int, int]) -> torch.Tensor:
    """A hole mask ``[1, H, W]`` bool (white = hole) of the image's ``shape``; a mask of 0s and 1s
    (as numpy or OpenCV code often saves one) marks the hole with its 1s. Wrong size, empty or
    full masks are ``UserError``s."""
    img = read_image(path, "L")
    m = img > (0 if 0 < float(img.max()) <= 1 / 255 + 1e-6 else 0.5)
    if tuple(m.shape[1:]) != tuple(shape):
        raise UserError(f"mask {path} is {m.shape[2]}x{m.shape[1]}, the image is {shape[1]}x{shape[0]}: "
                        f"they must be the same size")
    if not m.any():
        raise UserError(f"mask {path} is empty: mark the hole in white" + (
            f" (its brightest pixel is {round(float(img.max()) * 255)} of 255: a hole is brighter than 127)"
            if img.max() > 0 else ""))
    if m.all():
        raise UserError(f"mask {path} covers the whole image: nothing is left to inpaint from")
    return m


def resize_longer(img: torch.Tensor, size: int, min_side: int = 1) -> torch.Tensor:
    """``img`` (``[C, H, W]`` or ``[B, C, H, W]`` in [0, 1]) resized so that its longer side is
    ``size`` (bilinear, antialiased when shrinking; no side below ``min_side``)."""
    import torch.nn.functional as F
    x = img if img.dim() == 4 else img[None]
    h, w = x.shape[2:]
    scale = size / max(h, w)
    x = F.interpolate(x, size=(max(min_side, round(h * scale)), max(min_side, round(w * scale))), mode="bilinear",
                      antialias=scale < 1, align_corners=False).clamp(0, 1)
    return x if img.dim() == 4 else x[0]


def from_uint8(a: np.ndarray) -> torch.Tensor:
    """``[H, W, C]`` uint8 -> ``[C, H, W]`` float in [0, 1] (a copy; ``to_uint8``'s inverse)."""
    return torch.from_numpy(np.array(a, np.uint8)).permute(2, 0, 1).float() / 255


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` or ``[H, W]`` in [0, 1] -> ``[H, W(, C)]`` uint8."""
    a = img.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return a


def write_image(path: str | Path, img: torch.Tensor, alpha: torch.Tensor | None = None) -> None:
    """``img`` (``[C, H, W]`` in [0, 1]) as a picture; with ``alpha`` (``[1, H, W]``, an input's
    transparency, ``read_alpha``) as RGBA."""
    Image.fromarray(to_uint8(img if alpha is None else torch.cat([img, alpha]))).save(path)


def preserve_colour(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The first image's luminance with the second's chroma (YCbCr, ITU-R BT.601); ``[..., 3, H, W]``:
    ``stylize --preserve-color`` (stylised luminance, content colours) and a colourising
    ``translate`` (the photo's luminance, the model's colours)."""
    def ycbcr(x):
        r, g, b = x.unbind(-3)
        y = 0.299 * r + 0.587 * g + 0.114 * b
        return y, 0.564 * (b - y), 0.713 * (r - y)
    y, _, _ = ycbcr(stylized)
    _, cb, cr = ycbcr(content)
    r, b = y + 1.403 * cr, y + 1.773 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], -3).clamp(0, 1)
