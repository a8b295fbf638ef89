"""Style data: crops keep train and test regions apart, videos read and write, made styles."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.data.style import folder_crops, made_style, random_crops, read_clip, read_frames, style_images, write_video
from rl_i2it.errors import UserError


def test_crops_come_from_their_split_region_and_are_seeded():
    w = 200
    img = np.zeros((64, w, 3), np.uint8)
    img[:, :150] = 10              # left 75 %: train
    img[:, 150:] = 200             # right 25 %: test
    pics = [("a", img)]
    train = random_crops(pics, 32, 20, "train", seed=0)
    test = random_crops(pics, 32, 20, "test", seed=0)
    assert train.shape == test.shape == (20, 3, 32, 32)
    assert (train <= 10).all() and (test >= 200).all()
    assert np.array_equal(train, random_crops(pics, 32, 20, "train", seed=0))
    assert not np.array_equal(train, random_crops([("a", np.random.default_rng(0).integers(0, 255, (64, w, 3),
                                                                                            dtype=np.uint8))],
                                                    32, 20, "train", seed=0))
    with pytest.raises(UserError, match="at least 100x100"):
        random_crops(pics, 100, 1, "test", seed=0)


def test_a_videos_frames_count_as_one_picture():
    still = ("still", np.full((40, 40, 3), 255, np.uint8))
    frames = [(f"clip.avi#{i}", np.zeros((40, 40, 3), np.uint8)) for i in range(50)]
    crops = random_crops([still, *frames], 16, 400, "train", seed=1, flip=False)
    share = (crops[:, 0, 0, 0] == 255).mean()
    assert 0.4 < share < 0.6                        # half from the still, half from the 50 frames


def test_frames_stream_one_at_a_time_and_bad_folders_fail_before_the_first(tmp_path):
    from rl_i2it.data.style import VideoOut, iter_frames
    frames = np.random.default_rng(0).integers(0, 255, (3, 24, 30, 3), dtype=np.uint8)
    folder = tmp_path / "f"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i}.png")
    stream = iter_frames(folder)
    assert not isinstance(stream, np.ndarray) and np.array_equal(np.stack(list(stream)), frames)
    assert np.array_equal(np.stack(list(iter_frames(folder, every=2))), frames[::2])
    Image.fromarray(frames[0][:20]).save(folder / "3.png")          # one frame of another size
    with pytest.raises(UserError, match="differ in size: 0.png is 30x24, 3.png 30x20"):
        next(iter_frames(folder))                                    # before any frame is given
    Image.fromarray(frames[0]).save(folder / "3.jpg")
    (folder / "3.png").unlink()
    whole = (folder / "3.jpg").read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not an image"):    # a cut-off JPEG (its header reads), text
        (folder / "3.jpg").write_bytes(damaged)
        with pytest.raises(UserError, match="not a readable image: .*3.jpg"):
            next(iter_frames(folder))                                # named, before any frame is given
    with pytest.raises(UserError, match="video not found"):
        next(iter_frames(tmp_path / "none.avi"))
    video = VideoOut(tmp_path / "odd.mp4", fps=5)
    for f in frames[:, :23, :29]:
        video.add(f)
    with pytest.raises(UserError, match="frames of one size"):
        video.add(frames[0])
    with pytest.raises(TypeError, match=r"uint8 \[H, W, 3\]"):
        video.add(frames[0, :23, :29].astype(np.float32) / 255)     # said here, not deep in OpenCV
    video.add(torch.from_numpy(frames[2, :23, :29]).permute(2, 0, 1).float() / 255)   # what stylize_frames yields
    back = read_frames(video.close())
    assert back.shape == (4, 24, 30, 3)                             # odd sides padded for the encoder
    assert np.abs(back[3].astype(int) - back[2].astype(int)).mean() < 8    # the tensor frame: the same picture


def test_frames_round_trip_through_a_video_file_and_a_folder(tmp_path):
    frames = np.stack([np.full((24, 32, 3), 40 * i, np.uint8) for i in range(5)])
    path = write_video(frames, tmp_path / "clip.mp4", fps=5)
    back = read_frames(path)
    from rl_i2it.data.style import video_info
    assert video_info(path) == (5, 5) and video_info(write_video(frames, tmp_path / "vfr.mp4", fps=1000))[0] == 10.0
    (tmp_path / "frames").mkdir()
    for i in range(3):
        Image.fromarray(frames[i]).save(tmp_path / "frames" / f"f{i}.png")
    assert video_info(tmp_path / "frames") == (10.0, 3)             # a folder: its frame count, the default rate
    assert back.shape[0] == 5 and back.shape[1:] == (24, 32, 3)
    odd = read_frames(write_video(frames[:, :23, :31], tmp_path / "odd.mp4", fps=5))   # the encoder's even sides
    assert odd.shape[1:] == (24, 32, 3) and np.abs(odd[:, -1].astype(int) - odd[:, -2]).mean() < 12
    assert np.abs(back.astype(int).mean((1, 2, 3)) - frames.mean((1, 2, 3))).max() < 12
    folder = tmp_path / "f"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:02d}.png")
    assert np.array_equal(read_frames(folder, every=2), frames[::2])
    clip = read_clip(folder, first=1, n=3, size=(12, 16))                    # frames 1-3, resized
    assert clip.shape == (3, 3, 12, 16) and clip.dtype == torch.float32
    with pytest.raises(ValueError, match="holds 5 frames: frames 3-5 asked for"):
        read_clip(folder, first=3, n=3)                                      # not 2 of the 3 in silence
    with pytest.raises(ValueError, match="holds 5 frames: frames 100-102 asked for"):
        read_clip(folder, first=100, n=3)                                    # (said 100: first, not the count)
    assert torch.allclose(clip.mean((1, 2, 3)), torch.tensor([40.0, 80.0, 120.0]) / 255, atol=1e-3)
    numbered = tmp_path / "n"                     # ffmpeg's %d names play in number order; macOS's ._ files skipped
    numbered.mkdir()
    for i in (1, 2, 10):
        Image.fromarray(frames[i % 5]).save(numbered / f"frame_{i}.png")
    (numbered / "._frame_3.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert np.array_equal(read_frames(numbered), frames[[1, 2, 0]])
    (tmp_path / "junk.avi").write_bytes(b"x")
    with pytest.raises(UserError, match="cannot open video|no frames"):
        read_frames(tmp_path / "junk.avi")
    with pytest.raises(UserError, match="not found"):
        read_frames(tmp_path / "none.avi")


def test_a_cut_off_video_gives_its_frames_and_says_so(tmp_path, capfd):
    """A video cut short (a copy that stopped, a damaged file) gives the frames it holds and one
    note naming how many its header promised; FFmpeg's own lines are not shown. An intact one: no note."""
    import cv2
    rng = np.random.default_rng(0)
    path = tmp_path / "m.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 32))
    for _ in range(40):
        writer.write(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8))
    writer.release()
    assert len(read_frames(path)) == 40 and capfd.readouterr().err == ""
    data = path.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
    n = len(read_frames(tmp_path / "cut.avi"))
    assert 5 < n < 30
    assert capfd.readouterr().err == f"rl-i2it: note: {tmp_path / 'cut.avi'} ended after {n} of the 40 frames its header gives (a damaged or cut-off file?)\n"
    assert len(read_frames(tmp_path / "cut.avi", max_frames=3)) == 3 and capfd.readouterr().err == ""


def test_made_styles_are_seeded_textures_and_folders_are_read(tmp_path):
    a, b = made_style(3, 64), made_style(4, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, made_style(3, 64)) and not np.array_equal(a, b)
    assert a.std() > 10                                           # strokes, not a flat colour
    bank = style_images("made", 3, seed=7, size=32)
    assert [n for n, _ in bank] == ["made:7", "made:8", "made:9"]
    Image.fromarray(a).save(tmp_path / "x.png")
    assert style_images(str(tmp_path), 0)[0][1].shape == (64, 64, 3)
    with pytest.raises(UserError, match="not found"):
        style_images(str(tmp_path / "none"), 1)
    with pytest.raises(UserError, match="x.png: it is a file, not a folder"):         # one style image as --styles
        style_images(str(tmp_path / "x.png"), 1)
    with pytest.raises(UserError, match="x.png: it is a file, not a folder"):
        folder_crops(tmp_path / "x.png", 16, 4, "train")
    crops = folder_crops(tmp_path, 16, 4, "train")
    assert crops.shape == (4, 3, 16, 16)
    bad = tmp_path / "bad"                                            # every file it cannot use, named at once
    bad.mkdir()
    Image.fromarray(a).save(bad / "a.png")
    Image.fromarray(a[:8, :8]).save(bad / "tiny.png")
    (bad / "cut.png").write_bytes(b"\x89PNG\r\n")

    def at_least_16(name, arr):
        if min(arr.shape[:2]) < 16:
            raise UserError(f"{Path(name).name} is too small")
    with pytest.raises(UserError, match=r"2 of the 3 style images in .* cannot be used: .*cut.png.*; tiny.png is too small"):
        style_images(str(bad), 0, check=at_least_16)


def test_photo_styles_cut_the_train_region_of_the_stills_never_the_validation_ones(monkeypatch):
    from rl_i2it.data import paired, style
    still = np.zeros((80, 200, 3), np.uint8)
    still[:, :150] = 30                                   # left 75 %: the train region
    still[:, 150:] = 250                                  # right 25 %: test content, never a style
    held = np.full((80, 200, 3), 120, np.uint8)           # a validation still
    monkeypatch.setattr(paired, "sample_photos", lambda: [("photos:a.jpg", still), (style.VALID_STYLE_PICTURES[0], held)])
    bank = style_images("made+photos", 3, size=32)
    assert [n for n, _ in bank] == ["made:0", "made:1", "made:2", "photo:0:0", "photo:0:1", "photo:0:2"]
    photos = np.stack([a for _, a in bank[3:]])
    assert photos.shape == (3, 32, 32, 3) and (photos == 30).all()     # neither the test strip nor the held-out still
    assert [n for n, _ in style_images("photos", 2, size=32)] == ["photo:0:0", "photo:0:1"]
    monkeypatch.setattr(paired, "sample_photos", lambda: [(style.VALID_STYLE_PICTURES[0], held)])
    with pytest.raises(UserError, match="no photos"):
        style_images("photos", 2, size=32)
    with pytest.raises(UserError, match=r"made, photos, made\+photos"):
        style_images("made+paintings", 2)


def test_video_flows_are_the_real_motion_cut_as_the_crops(tmp_path, monkeypatch):
    """``video_flows``: the DIS flow of consecutive frames (a texture moving 2 px right per frame)
    oriented so that warping frame t by it gives frame t+1, scaled with the crop, mirrored with
    it; no flow from the validation frames (a 6 px jump there) nor across a scene cut; cached."""
    from rl_i2it.data import style
    from rl_i2it.ops.temporal import warp_image
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path / "cache"))
    import cv2
    g = np.random.default_rng(0)
    strip = cv2.resize((g.random((3, 5, 3)) * 255).astype(np.uint8), (78, 48), interpolation=cv2.INTER_CUBIC)
    at = [0, 2, 4, 10, 12, 14]                                        # 2 px a frame, 6 px from frame 2 to 3
    frames = [strip[:, x:x + 48] for x in at]
    frames.append(255 - frames[-1][::-1])                              # then a cut: another scene
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(np.ascontiguousarray(f)).save(clip / f"{i}.png")
    monkeypatch.setattr(style, "VALID_FRAMES", range(3, 4))          # pairs (2, 3) and (3, 4) left out
    from rl_i2it.ops import temporal
    used, dis = set(), temporal.dis_flow

    def recorded(a, b):                                               # which frames each flow comes from
        used.add(tuple(next(i for i, f in enumerate(frames) if np.array_equal(f, x)) for x in (b, a)))
        return dis(a, b)
    monkeypatch.setattr(temporal, "dis_flow", recorded)
    flows = style.video_flows(48, 40, videos=[clip]).float()
    assert used == {(0, 1), (1, 2), (4, 5)}                          # not the window's, not across the cut
    read = style.read_frames
    monkeypatch.setattr(style, "read_frames", lambda *a, **k: pytest.fail("the videos read, the bank cached"))
    assert torch.equal(style.video_flows(48, 40, videos=[clip]).float(), flows)
    monkeypatch.setattr(style, "read_frames", read)
    assert flows.shape == (40, 2, 48, 48) and flows.dtype == torch.float32
    inner = flows[:, :, 8:-8, 8:-8]                                   # DIS is least sure at the borders
    dx = inner[:, 0].median(-1).values.median(-1).values
    assert ((dx.abs() - 2).abs() < 0.5).all() and inner[:, 1].abs().median() < 0.3   # 2 px: no jump, no cut
    assert (dx > 0).any() and (dx < 0).any()                          # mirrored crops move the other way
    right = flows[dx > 0][:1]
    a = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255
    b = torch.from_numpy(frames[1]).permute(2, 0, 1)[None].float() / 255
    assert (warp_image(a, right) - b)[..., 8:-8, 8:-8].abs().mean() < 0.25 * (a - b)[..., 8:-8, 8:-8].abs().mean()
    monkeypatch.setattr(style, "VALID_FRAMES", range(0))
    jumps = style.video_flows(48, 60, videos=[clip]).float()[:, 0, 8:-8, 8:-8].abs()
    assert (jumps.median(-1).values.median(-1).values > 4).any()      # with the window open: the 6 px pair
    small = style.video_flows(24, 40, videos=[clip]).float()[:, :, 4:-4, 4:-4]
    assert 0.4 < small[:, 0].abs().median() < 6.5                     # a 24 px cut of a 24-48 px square: scaled
    assert len(list((tmp_path / "cache" / "style").glob("flows_*.npz"))) == 3
    with pytest.raises(UserError, match="cannot give 64x64 flows"):
        style.video_flows(64, 4, videos=[clip])
    monkeypatch.setattr(style, "VALID_FRAMES", range(0, 7))
    with pytest.raises(UserError, match="no pair of consecutive frames"):
        style.video_flows(48, 4, videos=[clip])


def test_a_damaged_video_is_a_user_error_without_a_stderr(tmp_path, monkeypatch):
    """The open's quieting of file descriptor 2 needs no ``sys.stderr`` (a GUI launch has none):
    the damaged file is still our error, not an AttributeError."""
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFFxxxxAVI garbage" * 10)
    monkeypatch.setattr("sys.stderr", None)
    with pytest.raises(UserError, match="cannot open video"):
        read_frames(bad)


def test_a_frame_folder_read_every_nth_gives_max_frames_frames(tmp_path):
    """a folder of frames is read as a video file is: every `every`-th frame, up to
    `max_frames` of those (not max_frames files, then every-th of them)."""
    from PIL import Image
    from rl_i2it.data.style import read_frames
    for i in range(8):
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / f"f{i}.png")
    got = read_frames(tmp_path, every=2, max_frames=3)
    assert got.shape[0] == 3
    assert [int(f[0, 0, 0]) for f in got] == [0, 40, 80]


def test_crops_are_flipped_left_right_never_upside_down():
    h, w = 32, 200
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 2:, :, 0] = 255                               # channel 0: dark top, bright bottom
    img[:, :, 1] = np.linspace(0, 255, w).astype(np.uint8)  # channel 1: dark left, bright right
    crops = random_crops([("a", img)], h, 40, "train", seed=0).astype(int)
    assert (crops[:, 0, 0] == 0).all() and (crops[:, 0, -1] == 255).all()         # always upright
    lr = np.sign(crops[:, 1, h // 2, -1] - crops[:, 1, h // 2, 0])
    assert (lr > 0).any() and (lr < 0).any()                                        # some mirrored
