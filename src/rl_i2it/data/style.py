"""Style transfer data: the style image, the content photos and frames, videos in and out.

* ``fetch_style()`` copies opencv-doc's ``starry_night.jpg`` (the demo style) and its three
  videos (``Megamind.avi``, ``vtest.avi``, ``tree.avi``) into ``cache_dir()/style``, sha256
  checked (Debian's ``opencv-doc``, ``apt-get download``, never installed).
* ``content_crops(size, n, split)``: random square crops (side from ``size`` up to the
  region's height, resized to ``size``) and horizontal flips of the photos we reach
  (``paired.sample_photos``: opencv-doc's stills and scikit-learn's) and of every 10th frame of
  ``Megamind.avi`` and ``vtest.avi``: the left 75 % of each picture for ``train``, the right 25 %
  for ``test`` (no pixel in both). ``tree.avi`` is kept out of training: the video test clip.
* ``made_styles(n, seed)``: painting-like stroke textures drawn with OpenCV (a random palette,
  strokes following a random smooth flow); held-out seeds give styles never seen in training.
  ``photo_styles(n, seed)``: crops of the stills (never of ``VALID_STYLE_PICTURES``). The two
  make the arbitrary-style model's bank (``style_images("made+photos", n)``): no art collection
  is reachable here.
* ``read_frames`` / ``iter_frames`` / ``write_video`` / ``VideoOut``: a video file (OpenCV) or a
  folder of frames in, all at once or one at a time; frames, an ``.mp4`` (or a GIF where OpenCV
  has no encoder) out.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import UserError
from .cache import cache_dir, cached_arrays, existing_folder, progress
from .images import READ_ERRORS, as_unit_frame, image_files, to_uint8, unreadable

STYLE_FILES = {
    "starry_night.jpg": "accda7a19a90f22a4a922fdc8c230167d7abf5f80882171e2cee125c5f12481d",
    "Megamind.avi": "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5",
    "vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "tree.avi": "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc",
}
"""opencv-doc (4.6.0) files of the style application, with their sha256."""
TRAIN_VIDEOS = ("Megamind.avi", "vtest.avi")
TEST_VIDEO = "tree.avi"
FRAME_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXT = (".avi", ".mp4", ".mov", ".mkv")

# OpenCV's FFmpeg says nothing (the level is read when it first opens a video): a damaged video
# gets one note of ours (``iter_frames``), not FFmpeg's lines about macroblocks.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


DEMO_STYLE = "starry_night"
"""The name that stands for opencv-doc's ``starry_night.jpg`` wherever a style image is asked for."""


def fetch_style(force: bool = False, verify: bool = False) -> Path:
    """``cache_dir()/style`` holding ``STYLE_FILES`` (fetched once)."""
    from .paired import fetch_opencv_doc
    return fetch_opencv_doc(STYLE_FILES, cache_dir() / "style", force, verify)


def style_file(name: str = "starry_night.jpg", fetch: bool = True) -> Path:
    """The path of a bundled style file (fetched when missing and ``fetch``)."""
    path = cache_dir() / "style" / name
    if not path.is_file():
        if not fetch:
            raise UserError(f"{path} is missing: run `rl-i2it data fetch style`")
        fetch_style()
    return path


def _read_rgb(path: Path) -> np.ndarray:
    """An image file as ``[H, W, 3]`` uint8 RGB (``UserError`` when unreadable)."""
    from .images import read_image, to_uint8
    return to_uint8(read_image(path, "RGB"))


# -- videos -----------------------------------------------------------------------------------
def read_frames(path: str | Path, every: int = 1, max_frames: int = 0) -> np.ndarray:
    """Frames ``[N, H, W, 3]`` uint8 RGB of a video file (any format OpenCV reads) or of a folder
    of images (in natural name order: frame_2 before frame_10; hidden files skipped); every
    ``every``-th frame, at most ``max_frames`` (0 = all). ``iter_frames`` gives them one at a time."""
    frames = list(iter_frames(path, every, max_frames))
    if not frames:
        raise UserError(f"no frames could be read from {path}")
    return np.stack(frames)


def iter_frames(path: str | Path, every: int = 1, max_frames: int = 0):
    """The frames of ``read_frames``, one ``[H, W, 3]`` uint8 array at a time (a long HD video does
    not fit in memory). A missing video, one OpenCV cannot open, a folder without frames, with
    frames of two sizes or with a damaged one: a ``UserError`` at the first ``next()``, before any frame."""
    path = Path(path)
    if path.is_dir():
        files = image_files(path, FRAME_EXT)            # frame_2 before frame_10
        if not files:
            raise UserError(f"no frames ({', '.join(FRAME_EXT)}) in {path}")
        files = files[::every][:max_frames or None]
        sizes = [_shown_size(p) for p in progress(files, f"checking {len(files)} frames", "frame")]
        odd = next((i for i, s in enumerate(sizes) if s != sizes[0]), None)
        if odd is not None:
            (w0, h0), (w1, h1) = sizes[0], sizes[odd]
            raise UserError(f"the frames in {path} differ in size: {files[0].name} is {w0}x{h0}, {files[odd].name} "
                            f"{w1}x{h1} (a video's frames share one size: bring them to one first)")
        for p in files:
            yield _read_rgb(p)
        return
    import cv2
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    with _quiet_stderr():                # OpenCV's own AVI reader prints a damaged header's faults itself
        cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise UserError(f"cannot open video {path} (not a video OpenCV reads)")
        header = int(max(cap.get(cv2.CAP_PROP_FRAME_COUNT), 0))
        i = n = 0
        while not max_frames or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                n += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    if n == 0:
        raise UserError(f"no frames could be read from {path}")
    if (not max_frames or n < max_frames) and i < header - max(2, header // 50):    # counts are estimates
        from tqdm.auto import tqdm               # a line of its own under a progress bar that is showing
        tqdm.write(f"rl-i2it: note: {path} ended after {i} of the {header} frames its header gives "
                   f"(a damaged or cut-off file?)", file=sys.stderr)


class _quiet_stderr:
    """File descriptor 2 to /dev/null for a block (a library's C code writing straight to it); our
    own error follows, one line."""

    def __enter__(self):
        if sys.stderr is not None:
            sys.stderr.flush()
        try:
            self.saved = os.dup(2)
        except OSError:                  # no fd 2 (closed, a GUI launch): nothing to quiet
            self.saved = None
            return
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


def _shown_size(path: Path) -> tuple[int, int]:
    """A frame's size as shown (EXIF orientation applied), decoded whole (a few ms, against seconds
    to stylise it), so a damaged frame (a cut-off JPEG) is named before anything is written."""
    try:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
            return (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def read_clip(path: str | Path, first: int = 0, n: int = 12, size: tuple[int, int] = (120, 160)) -> torch.Tensor:
    """Frames ``first .. first + n - 1`` of a video (or frame folder) as ``[n, 3, H, W]`` float in
    [0, 1], resized (antialiased bilinear) to ``size = (H, W)``: the benchmarks' evaluation clips."""
    if first < 0 or n < 1:
        raise ValueError(f"read_clip: first must be >= 0 and n >= 1, got first={first}, n={n}")
    held = read_frames(path, max_frames=first + n)
    frames = held[first:]
    if len(frames) < n:
        raise ValueError(f"{path} holds {len(held)} frames: frames {first}-{first + n - 1} asked for")
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def video_info(path: str | Path, default_fps: float = 10.0) -> tuple[float, int | None]:
    """A video's frame rate (``default_fps`` where it gives none or a variable-rate file's 1000)
    and the frame count its header gives (None when it gives none), or, for a folder of frames,
    ``default_fps`` and how many frames it holds: for the output video and a progress bar's total."""
    path = Path(path)
    if path.is_dir():
        return default_fps, len(image_files(path, FRAME_EXT))
    import cv2
    with _quiet_stderr():
        cap = cv2.VideoCapture(str(path))
    fps, count = (cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else (0.0, 0)
    cap.release()
    return (fps if 0 < fps <= 240 else default_fps), (count if count > 0 else None)


def write_video(frames, path: str | Path, fps: float = 10.0) -> Path:
    """Write ``[N, H, W, 3]`` uint8 RGB frames (or any iterable of ``[H, W, 3]`` ones) as
    ``path`` (``.mp4``; see ``VideoOut``). Returns the path written."""
    video = VideoOut(path, fps)
    for f in frames:
        video.add(f)
    return video.close()


class VideoOut:
    """An ``.mp4`` written a frame at a time (``add``; ``close`` returns the path written). An odd
    side gains a copy of its last row or column (the encoder would drop it). Where OpenCV cannot
    encode, the frames are kept and written as a GIF beside it at ``close``."""

    def __init__(self, path: str | Path, fps: float = 10.0):
        self.path, self.fps, self.writer, self.kept, self.shape = Path(path), fps, None, [], None

    def add(self, frame: np.ndarray | torch.Tensor) -> None:
        """``frame``: uint8 ``[H, W, 3]`` RGB (as ``iter_frames`` gives), or ``[3, H, W]`` in [0, 1]
        (as ``stylize_frames`` yields)."""
        import cv2
        if isinstance(frame, torch.Tensor):
            frame = to_uint8(as_unit_frame(frame, "frame", 3)[0])
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3):
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise TypeError(f"a frame is uint8 [H, W, 3] RGB or a tensor [3, H, W] in [0, 1], got {got}")
        h, w = frame.shape[:2]
        if self.shape is None:
            self.shape = (h, w)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (w + w % 2, h + h % 2))
        elif (h, w) != self.shape:
            raise UserError(f"frame of {w}x{h} in a video of {self.shape[1]}x{self.shape[0]}: give frames of one size")
        if self.writer.isOpened():
            even = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            self.writer.write(cv2.cvtColor(np.ascontiguousarray(even), cv2.COLOR_RGB2BGR))
        else:
            self.kept.append(frame)

    def close(self) -> Path:
        if self.writer is None:
            raise ValueError("VideoOut: no frame was added")
        opened = self.writer.isOpened()
        self.writer.release()
        if opened and self.path.is_file() and self.path.stat().st_size > 0:
            return self.path
        if opened:
            raise UserError(f"OpenCV wrote nothing into {self.path} (the frames are in the frames folder)")
        gif = self.path.with_suffix(".gif")
        ims = [Image.fromarray(f) for f in self.kept]
        ims[0].save(gif, save_all=True, append_images=ims[1:], duration=max(1, round(1000 / self.fps)), loop=0)
        return gif


# -- content ----------------------------------------------------------------------------------
def content_pictures(fetch: bool = True) -> list[tuple[str, np.ndarray]]:
    """The stills of ``paired.sample_photos`` and every 10th frame of the training videos."""
    from .paired import sample_photos
    pics = sample_photos()
    folder = cache_dir() / "style"
    if fetch and not all((folder / v).is_file() for v in TRAIN_VIDEOS):
        try:
            fetch_style()
        except UserError:
            pass                               # no apt here: the stills alone
    for name in TRAIN_VIDEOS:
        if (folder / name).is_file():
            pics += [(f"{name}#{i}", f) for i, f in enumerate(read_frames(folder / name, every=10))]
    return pics


def random_crops(pictures: list[tuple[str, np.ndarray]], size: int, n: int, split: str, seed: int,
                 flip: bool = True) -> np.ndarray:
    """``n`` seeded random square crops ``[n, 3, size, size]`` uint8 of the pictures' ``split``
    region (train: left 75 %, test: right 25 %), side from ``size`` to
    the region's height (LANCZOS-resized to ``size`` after cutting), flipped left-right at random
    when ``flip``. A picture is drawn uniformly among the stills and the videos (a video's frames,
    named ``video#i``, count as one: a long clip does not crowd out the stills)."""
    from .paired import TEST_STRIP
    rng = np.random.default_rng(seed)
    regions = []
    for name, img in pictures:
        h, w = img.shape[:2]
        cut = int(round(w * (1 - TEST_STRIP)))
        x0, x1 = (0, cut) if split == "train" else (cut, w)
        if min(h, x1 - x0) >= size:
            regions.append((name, (img, x0, x1)))
    if not regions:
        raise UserError(f"no picture has a {split} region of at least {size}x{size} pixels")
    groups: dict[str, list] = {}
    for name, region in regions:
        groups.setdefault(name.split("#")[0], []).append(region)
    groups_list = list(groups.values())
    out = np.empty((n, 3, size, size), np.uint8)
    for k in range(n):
        group = groups_list[int(rng.integers(len(groups_list)))]
        img, x0, x1 = group[int(rng.integers(len(group)))]
        h, rw = img.shape[0], x1 - x0
        side = int(rng.integers(size, min(h, rw) + 1))
        left, top = x0 + int(rng.integers(0, rw - side + 1)), int(rng.integers(0, h - side + 1))
        crop = Image.fromarray(img[top:top + side, left:left + side]).resize((size, size), Image.Resampling.LANCZOS)
        a = np.asarray(crop)
        if flip and rng.random() < 0.5:
            a = a[:, ::-1]
        out[k] = a.transpose(2, 0, 1)
    return out


def content_crops(size: int, n: int, split: str = "train", seed: int = 0, fetch: bool = True) -> torch.Tensor:
    """``n`` content crops ``[n, 3, size, size]`` uint8 (see ``random_crops``) of
    ``content_pictures()``, cached in ``style/content_{split}_{size}_{n}_{seed}_{sources}.npz``."""
    if split not in ("train", "test"):
        raise UserError(f"unknown split {split!r} (use train or test)")
    pics = content_pictures(fetch)
    key = hashlib.sha256(repr([(name, p.shape, hashlib.sha256(p.tobytes()).hexdigest()[:12])
                               for name, p in pics]).encode()).hexdigest()[:10]
    path = cache_dir() / "style" / f"content_{split}_{size}_{n}_{seed}_{key}.npz"
    crops = cached_arrays(path, lambda: {"crops": random_crops(pics, size, n, split, seed + (0 if split == "train" else 1000))})
    return torch.from_numpy(crops["crops"])


MAX_FLOW = 8.0
"""``video_flows``: each flow component clipped to this many pixels of the frame (99 % are under 2.5)."""
VALID_FRAMES = range(96, 116)
"""Frames of each training video that ``video_flows`` leaves out: the validation clips of
``bench/style_valid.py`` (frames 100-111) with a margin."""


def _content_digest(path: Path) -> str:
    """A video file's sha256, or a frame folder's file names and sizes: what a cache key needs."""
    if path.is_dir():
        return hashlib.sha256(repr([(p.name, p.stat().st_size) for p in image_files(path, FRAME_EXT)]).encode()
                              ).hexdigest()[:16]
    if not path.is_file():
        raise UserError(f"video not found: {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def video_flows(size: int, n: int, seed: int = 0, videos: list[Path] | None = None) -> torch.Tensor:
    """``n`` flows ``[n, 2, size, size]`` float16 (pixels, dx, dy) of real motion: OpenCV DIS
    between consecutive frames of the training videos (never ``VALID_FRAMES``, never tree.avi,
    never across a scene cut: a pair changing 5x more than the video's median pair),
    oriented so that ``warp_image(frame_t, flow) ~ frame_t+1``, cut as the content crops are (a
    square of side ``size`` up to the frame's height, resized to ``size`` with the flow scaled
    with it, flipped left-right at random). The compound regularisation's motion with
    ``task_options.motion = "real"``; cached in ``style/flows_{size}_{n}_{seed}_{key}.npz``."""
    from ..ops.temporal import dis_flow
    if videos is None:
        folder = cache_dir() / "style"
        if not all((folder / v).is_file() for v in TRAIN_VIDEOS):
            fetch_style()
        videos = [folder / v for v in TRAIN_VIDEOS]
    key = hashlib.sha256(repr([[(v.name, _content_digest(v)) for v in map(Path, videos)],
                               (VALID_FRAMES.start, VALID_FRAMES.stop), MAX_FLOW, "cuts at 5x the median"]
                              ).encode()).hexdigest()[:10]

    def consecutive(c: int):
        """``(t, frame t, frame t + 1)`` of video ``c``, two frames in memory at a time."""
        prev = None
        for t, frame in enumerate(iter_frames(videos[c])):
            if prev is not None:
                yield t - 1, prev, frame
            prev = frame

    def make() -> np.ndarray:                 # the videos are read (twice, streamed) only when not cached
        pairs = []
        for c in range(len(videos)):
            side = min(next(iter_frames(videos[c])).shape[:2])     # said before the video is read through
            if side < size:
                raise UserError(f"{videos[c]}: frames of side {side} cannot give {size}x{size} flows "
                                f"(task_options.size)")
            change = {t: np.abs(b.astype(np.int16) - a).mean() for t, a, b in consecutive(c)}
            cut = 5 * np.median(list(change.values())) if change else 0.0   # a scene cut: no motion to learn from
            pairs += [(c, t) for t in change if t not in VALID_FRAMES and t + 1 not in VALID_FRAMES and change[t] <= cut]
        if not pairs:
            raise UserError("the videos hold no pair of consecutive frames for task_options.motion = real")
        rng = np.random.default_rng(seed)
        picks = sorted(int(i) for i in rng.integers(0, len(pairs), n))
        times = {pairs[i] for i in picks}
        out, k = np.empty((n, 2, size, size), np.float16), 0
        for c in range(len(videos)):
            for t, a, b in consecutive(c):
                if (c, t) not in times:
                    continue
                flow = np.clip(dis_flow(b, a), -MAX_FLOW, MAX_FLOW)   # b at x ~ a at x + flow; DIS's rare
                h, w = flow.shape[:2]                                  # wild vectors (120 px) clipped
                while k < n and pairs[picks[k]] == (c, t):             # every crop of this pair, in pick order
                    side = int(rng.integers(size, min(h, w) + 1))
                    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                    crop = torch.from_numpy(np.ascontiguousarray(flow[top:top + side, left:left + side])).permute(2, 0, 1)
                    crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                                         align_corners=False)[0] * (size / side)
                    if rng.random() < 0.5:
                        crop = crop.flip(-1) * torch.tensor([-1.0, 1.0])[:, None, None]   # mirrored: dx changes sign
                    out[k], k = crop.numpy(), k + 1
        return out[rng.permutation(n)]

    return torch.from_numpy(cached_arrays(cache_dir() / "style" / f"flows_{size}_{n}_{seed}_{key}.npz",
                                          lambda: {"flows": make()})["flows"])


def folder_crops(folder: str | Path, size: int, n: int, split: str, seed: int = 0) -> torch.Tensor:
    """Crops as ``content_crops`` of the images and videos in a user's folder."""
    folder = existing_folder(folder, "content folder")
    pics = []
    for p in image_files(folder, FRAME_EXT + VIDEO_EXT, recursive=True):
        if p.suffix.lower() in FRAME_EXT:
            pics.append((str(p), _read_rgb(p)))
        else:
            pics += [(f"{p}#{i}", f) for i, f in enumerate(read_frames(p, every=10))]
    if not pics:
        raise UserError(f"no images or videos in {folder}")
    return torch.from_numpy(random_crops(pics, size, n, split, seed + (0 if split == "train" else 1000)))


# -- styles -----------------------------------------------------------------------------------
def made_style(seed: int, size: int = 256) -> np.ndarray:
    """A painting-like texture ``[size, size, 3]`` uint8: a blurred palette field under a few
    hundred anti-aliased strokes whose directions follow a random smooth flow."""
    import cv2
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 7))
    hsv = np.stack([rng.integers(0, 180, k), rng.integers(60, 256, k), rng.integers(60, 256, k)], 1)
    palette = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float64)
    coarse = rng.integers(0, k, (4, 4))
    img = cv2.resize(palette[coarse].astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 0, 255).astype(np.uint8).copy()
    freq, phase = rng.uniform(0.5, 3.0, 2), rng.uniform(0, 2 * np.pi, 2)
    width, length = int(rng.integers(1, 7)), int(rng.integers(4, 30))
    for _ in range(int(rng.integers(300, 1500))):
        x, y = rng.uniform(0, size, 2)
        angle = (np.sin(freq[0] * x / size * 2 * np.pi + phase[0]) * np.pi
                 + np.cos(freq[1] * y / size * 2 * np.pi + phase[1]))
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        colour = np.clip(palette[int(rng.integers(k))] + rng.normal(0, 20, 3), 0, 255)
        cv2.line(img, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)), tuple(float(c) for c in colour),
                 width, cv2.LINE_AA)
    return img


VALID_STYLE_PICTURES = ("photos:graf1.png", "photos:baboon.jpg", "sklearn:flower.jpg", "photos:fruits.jpg")
"""Stills never cut into photo styles: the validation styles of the arbitrary model
(``bench/style_valid.py arbitrary``); they stay content pictures."""


def photo_styles(n: int, seed: int = 0, size: int = 256) -> list[tuple[str, np.ndarray]]:
    """``n`` style images ``[size, size, 3]`` uint8: ``random_crops`` of the train region (left
    75 %) of ``paired.sample_photos`` other than ``VALID_STYLE_PICTURES``: real pictures' colour
    and texture statistics beside the made textures' strokes."""
    from .paired import sample_photos
    pictures = [(name, a) for name, a in sample_photos() if name not in VALID_STYLE_PICTURES]
    if not pictures:
        raise UserError("no photos to cut styles from: run `rl-i2it data fetch photos`")
    crops = random_crops(pictures, size, n, "train", seed)
    return [(f"photo:{seed}:{i}", np.ascontiguousarray(c.transpose(1, 2, 0))) for i, c in enumerate(crops)]


def made_styles(n: int, seed: int = 0, size: int = 256) -> list[tuple[str, np.ndarray]]:
    """``made_style`` of seeds ``seed .. seed + n - 1``, named ``made:SEED``."""
    return [(f"made:{seed + i}", made_style(seed + i, size)) for i in range(n)]


STYLE_SOURCES = {"made": made_styles, "photos": photo_styles}


def named_styles(source: str) -> bool:
    """Does ``source`` name style sources (``made``, ``photos``, joined by ``+``), not a folder?"""
    return all(part in STYLE_SOURCES for part in source.split("+"))


def style_images(source: str, n: int, seed: int = 0, size: int = 256, check=None) -> list[tuple[str, np.ndarray]]:
    """The arbitrary-style model's bank: ``n`` images of each source named in ``source``
    (joined by ``+``): ``made`` (``made_style`` of seeds ``seed .. seed+n-1``), ``photos``
    (``photo_styles``); or the images of a folder (``n`` first in natural name order; 0 = all),
    each read and passed to ``check(name, array)`` (a ``UserError`` for one it cannot use): every
    file that fails is named in one error, so a folder is mended in one go."""
    if named_styles(source):
        return [item for part in source.split("+") for item in STYLE_SOURCES[part](n, seed, size)]
    folder = existing_folder(source, "styles folder", " (or use made, photos, made+photos)")
    files = image_files(folder, FRAME_EXT, recursive=True)
    if not files:
        raise UserError(f"no style images in {folder}")
    items, bad = [], []
    for p in files[: n or None]:
        try:
            items.append((str(p), _read_rgb(p)))
            if check is not None:
                check(*items[-1])
        except UserError as exc:
            bad.append(str(exc))
    if bad:
        raise UserError(f"{len(bad)} of the {len(files[: n or None])} style images in {folder} cannot be used: "
                        + "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return items
