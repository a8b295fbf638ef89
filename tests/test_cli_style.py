"""`rl-i2it train style` and `rl-i2it stylize`: image, every step, strip, pairs, video, colour
preservation; bad input -> one line, exit 2, nothing written."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.cli import main
from test_cli import fails

SET = ["--set", "task_options.size=32", "--set", "task_options.widths=8,8,16",
       "--set", "task_options.critic_widths=8,8,8", "--set", "task_options.vgg=random",
       "--set", "task_options.n_content=16", "--set", "train.n_envs=2", "--set", "train.horizon=2",
       "--set", "train.learning_starts=4", "--set", "train.replay_size=32", "--set", "sac.batch_size=2"]


def save(path, arr):
    Image.fromarray(arr).save(path)
    return str(path)


def picture(h, w, seed=0):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack([np.sin(xx / g.uniform(3, 9)), np.cos(yy / g.uniform(3, 9)), np.sin((xx + yy) / 7)], -1)
    return ((base + 1) * 127.5).astype(np.uint8)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("style")
    content = root / "content"
    content.mkdir()
    for i in range(3):
        save(content / f"c{i}.png", picture(48, 160, i))      # test region (right 25 %): 40 px wide
    styles = root / "styles"
    styles.mkdir()
    for i in range(2):
        save(styles / f"s{i}.png", picture(40, 40, 10 + i)[:, ::-1].copy())
    common = SET + ["--set", f"task_options.content={content}", "--steps", "2"]
    one, arb = root / "one", root / "arb"
    assert main(["train", "style", "--style", str(styles / "s0.png"), "--out", str(one), *common]) == 0
    assert main(["train", "style", "--arbitrary", "--styles", str(styles), "--set", "task_options.n_styles=2",
                 "--out", str(arb), *common]) == 0
    return {"one": one, "arb": arb, "style": styles / "s1.png", "root": root}


def test_stylize_writes_result_steps_and_strip_at_the_contents_size(tmp_path, models, capsys):
    c = save(tmp_path / "c.png", picture(37, 50))
    out = tmp_path / "out"
    assert main(["stylize", str(models["one"]), "--content", c, "--steps", "3", "--every-step", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["result.png", "step_01.png", "step_02.png", "step_03.png", "strip.png"]
    assert Image.open(out / "result.png").size == (50, 37)
    assert np.array_equal(np.asarray(Image.open(out / "step_03.png")), np.asarray(Image.open(out / "result.png")))
    assert "in 3 steps" in capsys.readouterr().out
    assert main(["stylize", str(models["one"]), "--content", c, "--steps", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["result.png", "strip.png"]     # no steps of the first run
    small = tmp_path / "small"
    assert main(["stylize", str(models["one"]), "--content", c, "--size", "24", "--preserve-color",
                 "--out", str(small)]) == 0
    assert Image.open(small / "result.png").size == (24, 18)
    plain = tmp_path / "plain"
    assert main(["stylize", str(models["one"]), "--content", c, "--size", "24", "--out", str(plain)]) == 0
    lum = lambda p: (np.asarray(Image.open(p).convert("RGB"), np.float32) @ [0.299, 0.587, 0.114]) / 255  # noqa: E731
    Image.open(c).resize((24, 18), Image.LANCZOS).save(tmp_path / "c24.png")
    kept = np.abs(lum(small / "result.png") - lum(plain / "result.png")).mean()      # the stylised luminance
    given = np.abs(lum(small / "result.png") - lum(tmp_path / "c24.png")).mean()     # (not the content's)
    assert kept < 0.03 and given > 5 * kept, (kept, given)
    every = tmp_path / "every"                                # the same picture through --every-step's path
    assert main(["stylize", str(models["one"]), "--content", c, "--size", "24", "--preserve-color", "--every-step",
                 "--out", str(every)]) == 0
    assert np.array_equal(np.asarray(Image.open(every / "result.png")), np.asarray(Image.open(small / "result.png")))


def test_sampled_plans_follow_the_seed(tmp_path, models):
    """``--sample`` draws its plans from ``--seed`` (default 0): a rerun gives the same picture, another
    seed another one (before, stylize had no seed and two runs differed)."""
    c = save(tmp_path / "c.png", picture(32, 40))

    def result(name, *extra):
        assert main(["stylize", str(models["one"]), "--content", c, "--steps", "2", "--sample", *extra,
                     "--out", str(tmp_path / name)]) == 0
        torch.manual_seed(123)                          # what ran before must not matter
        return np.asarray(Image.open(tmp_path / name / "result.png")).astype(int)
    first, again, other = result("a"), result("b"), result("c", "--seed", "5")
    assert np.array_equal(first, again) and np.abs(first - other).max() > 0

def test_a_transparent_contents_alpha_is_kept(tmp_path, models):
    """A cut-out (left half transparent): the result keeps its alpha, also at --size and in --pairs;
    an RGBA picture that is opaque everywhere gives an RGB result as before."""
    rgba = np.concatenate([picture(32, 40), np.full((32, 40, 1), 255, np.uint8)], 2)
    rgba[:, :20, 3] = 0
    c = save(tmp_path / "c.png", rgba)
    assert main(["stylize", str(models["one"]), "--content", c, "--steps", "2", "--every-step",
                 "--out", str(tmp_path / "a")]) == 0
    for name in ("result.png", "step_01.png"):
        got = np.asarray(Image.open(tmp_path / "a" / name))
        assert got.shape == (32, 40, 4) and np.array_equal(got[..., 3], rgba[..., 3])
    assert main(["stylize", str(models["one"]), "--content", c, "--size", "20", "--out", str(tmp_path / "b")]) == 0
    small = np.asarray(Image.open(tmp_path / "b" / "result.png"))
    assert small.shape == (16, 20, 4) and small[:, :8, 3].max() == 0 and small[:, 12:, 3].min() == 255
    (tmp_path / "p.csv").write_text("content\nc.png\n")
    assert main(["stylize", str(models["one"]), "--pairs", str(tmp_path / "p.csv"), "--steps", "2",
                 "--out", str(tmp_path / "p")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p" / "0000.png")), np.asarray(Image.open(tmp_path / "a" / "result.png")))
    rgba[..., 3] = 255
    assert main(["stylize", str(models["one"]), "--content", save(tmp_path / "o.png", rgba), "--steps", "2",
                 "--out", str(tmp_path / "o")]) == 0
    assert Image.open(tmp_path / "o" / "result.png").mode == "RGB"

def test_preserve_colour_keeps_the_contents_chroma():
    from rl_i2it.data.images import preserve_colour
    g = torch.Generator().manual_seed(0)
    content, stylized = torch.rand(3, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g)
    out = preserve_colour(stylized, content)
    lum = lambda x: 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]          # noqa: E731
    inside = (out > 0.01).all(0) & (out < 0.99).all(0)                  # not clipped
    assert torch.allclose(lum(out)[inside], lum(stylized)[inside], atol=2e-3)
    assert torch.allclose(preserve_colour(content, content), content, atol=2e-3)


def test_arbitrary_model_takes_a_style_and_pairs_write_numbered_files(tmp_path, models, capsys):
    c0, c1 = save(tmp_path / "a.png", picture(32, 40, 1)), save(tmp_path / "b.png", picture(44, 28, 2))
    out = tmp_path / "one"
    assert main(["stylize", str(models["arb"]), "--content", c0, "--style", str(models["style"]), "--steps", "2",
                 "--out", str(out)]) == 0
    assert Image.open(out / "result.png").size == (40, 32)
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"content,style\n{c0},{models['style']}\nb.png,{models['style']}\n")
    assert main(["stylize", str(models["arb"]), "--pairs", str(csv), "--steps", "2", "--out", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["0000.png", "0001.png"]
    assert Image.open(tmp_path / "p" / "0001.png").size == (28, 44)
    csv.write_text(f"content,style\n{c0},\nb.png,{models['style']}\n")        # --style fills the blank
    assert main(["stylize", str(models["arb"]), "--pairs", str(csv), "--style", str(models["style"]), "--steps", "2",
                 "--out", str(tmp_path / "q")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "q" / "0000.png")), np.asarray(Image.open(out / "result.png")))
    assert main(["stylize", str(models["arb"]), "--pairs", str(csv), "--style", str(models["style"]), "--steps", "2",
                 "--every-step", "--out", str(tmp_path / "q")]) == 0           # each row's steps too
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["0000.png", "0000_step_01.png", "0000_step_02.png",
                                                                  "0001.png", "0001_step_01.png", "0001_step_02.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "q" / "0000_step_02.png")),
                          np.asarray(Image.open(tmp_path / "q" / "0000.png")))


def test_pairs_hold_one_image_at_a_time(tmp_path, models, monkeypatch):
    """A batch of hundreds of HD photos must not sit in memory: every row is checked first (a bad
    one stops the batch before anything is written), then each is read, stylised and written in turn."""
    from rl_i2it.data import images
    events, real_read, real_write = [], images.read_image, images.write_image
    monkeypatch.setattr(images, "read_image", lambda p, *a: events.append(("read", Path(p).name)) or real_read(p, *a))
    monkeypatch.setattr(images, "write_image", lambda p, x, *a: events.append(("write", Path(p).name))
                        or real_write(p, x, *a))
    names = [Path(save(tmp_path / f"c{i}.png", picture(24, 32, i))).name for i in range(3)]
    (tmp_path / "pairs.csv").write_text("content\n" + "".join(f"{n}\n" for n in names))
    assert main(["stylize", str(models["one"]), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1",
                 "--out", str(tmp_path / "o")]) == 0
    assert events == [("read", n) for n in names] + [e for i, n in enumerate(names)
                                                     for e in (("read", n), ("write", f"{i:04d}.png"))]


def test_pairs_hold_one_style_image_at_a_time(tmp_path, models, monkeypatch):
    """A painting a row (an arbitrary model's batch) must not pile up in memory either: each row's
    style is read with it, once for a run of rows of one style."""
    from rl_i2it.data import images
    events, real_read = [], images.read_image
    monkeypatch.setattr(images, "read_image", lambda p, *a: events.append(Path(p).name) or real_read(p, *a))
    names = [Path(save(tmp_path / f"c{i}.png", picture(24, 32, i))).name for i in range(3)]
    a, b = models["root"] / "styles" / "s0.png", models["style"]
    (tmp_path / "pairs.csv").write_text(f"content,style\n{names[0]},{a}\n{names[1]},{a}\n{names[2]},{b}\n")
    assert main(["stylize", str(models["arb"]), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1",
                 "--out", str(tmp_path / "o")]) == 0
    checking = ["s0.png", "c0.png", "c1.png", "s1.png", "c2.png"]
    assert events == checking + ["c0.png", "s0.png", "c1.png", "c2.png", "s1.png"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    for name in ("10000.png", "10000_step_01.png", "2024-photo.png"):     # a long run's 10001st row; the user's
        save(tmp_path / "o" / name, picture(24, 32))
    assert main(["stylize", str(models["arb"]), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1",
                 "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0000.png", "0001.png", "0002.png", "2024-photo.png"]


def test_grey_content_and_grey_style_are_their_three_equal_channels(tmp_path, models):
    """An old black-and-white photo, a pencil drawing as the style: accepted, and stylised exactly as
    the same picture saved as RGB with three equal channels."""
    grey = picture(32, 40, 3)[..., 0]
    g_content, g_style = save(tmp_path / "c.png", grey), save(tmp_path / "s.png", picture(40, 40, 4)[..., 1])
    rgb_content = save(tmp_path / "c3.png", np.repeat(grey[..., None], 3, 2))
    rgb_style = save(tmp_path / "s3.png", np.repeat(picture(40, 40, 4)[..., 1:2], 3, 2))
    for content, style, out in ((g_content, g_style, "g"), (rgb_content, rgb_style, "rgb")):
        assert main(["stylize", str(models["arb"]), "--content", content, "--style", style, "--steps", "2",
                     "--out", str(tmp_path / out)]) == 0
    a, b = (np.asarray(Image.open(tmp_path / o / "result.png")) for o in ("g", "rgb"))
    assert a.shape == (32, 40, 3) and np.array_equal(a, b)


def test_video_in_frames_and_a_video_out(tmp_path, models, capsys, monkeypatch):
    import cv2
    path = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 32))
    assert writer.isOpened()
    for i in range(4):
        writer.write(np.roll(picture(32, 40, 3), 2 * i, axis=1))
    writer.release()
    out = tmp_path / "v"
    assert main(["stylize", str(models["one"]), "--video", str(path), "--steps", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    made = [p for p in out.iterdir() if p.suffix in (".mp4", ".gif")]
    assert len(made) == 1 and made[0].stat().st_size > 0
    from rl_i2it.core.trainer import load_policy
    from rl_i2it.data import style as style_data
    from rl_i2it.tasks.style import stylize_video
    whole = torch.from_numpy(style_data.read_frames(path)).permute(0, 3, 1, 2).float() / 255
    task, policy, _ = load_policy(models["one"])
    want = (stylize_video(task, policy, whole, 2)[0] * 255).round().byte().permute(0, 2, 3, 1).numpy()
    got = np.stack([np.array(Image.open(out / "frames" / f"{i:05d}.png")) for i in range(4)])
    assert np.abs(got.astype(int) - want).max() <= 1                 # frame by frame, as the library's
    monkeypatch.setattr(style_data, "read_frames", lambda *a, **k: pytest.fail("the whole video read at once"))
    assert main(["stylize", str(models["one"]), "--video", str(path), "--steps", "1", "--preserve-color",
                 "--out", str(tmp_path / "v2")]) == 0                # streamed: one frame at a time
    assert len(list((tmp_path / "v2" / "frames").iterdir())) == 4
    frames = tmp_path / "frames"                     # a folder of frames works too
    frames.mkdir()
    for i in range(2):
        save(frames / f"{i:03d}.png", picture(32, 40, i))
    assert main(["stylize", str(models["one"]), "--video", str(frames), "--steps", "1", "--out", str(tmp_path / "f")]) == 0
    assert len(list((tmp_path / "f" / "frames").iterdir())) == 2
    capsys.readouterr()
    fails(capsys, ["stylize", str(models["one"]), "--video", str(frames), "--every-step", "--out", str(tmp_path / "e")],
          "--every-step is for --content and --pairs")
    kept = tmp_path / "work"                         # ffmpeg's frames in the folder given as --out: refused, kept
    (kept / "frames").mkdir(parents=True)
    for i in range(1, 4):
        save(kept / "frames" / f"{i:05d}.png", picture(32, 40, i))
    before = {p.name: p.read_bytes() for p in (kept / "frames").iterdir()}
    fails(capsys, ["stylize", str(models["one"]), "--video", str(kept / "frames"), "--out", str(kept)],
          "frames/00001.png (of")
    assert {p.name: p.read_bytes() for p in (kept / "frames").iterdir()} == before
    for name in ("step_01.png", "result.png"):     # a name --content clears, one it replaces
        c = save(kept / name, picture(32, 40))
        fails(capsys, ["stylize", str(models["one"]), "--content", c, "--out", str(kept)], f"{name} lies in --out")
        assert (kept / name).exists()
    linked = tmp_path / "linked"                     # a link in --out under a written name: its target is kept
    linked.mkdir()
    photo = save(tmp_path / "photo.png", picture(32, 40))
    (linked / "result.png").symlink_to(photo)
    before = (tmp_path / "photo.png").read_bytes()
    fails(capsys, ["stylize", str(models["one"]), "--content", str(linked / "result.png"), "--out", str(linked)],
          "result.png lies in --out")
    assert (tmp_path / "photo.png").read_bytes() == before
    (kept / "step_1").mkdir()                        # in a subfolder of --out: not a name it writes
    sub = save(kept / "step_1" / "x.png", picture(32, 40))
    assert main(["stylize", str(models["one"]), "--content", sub, "--steps", "1", "--out", str(kept)]) == 0


def test_an_error_midway_leaves_the_last_runs_outputs_as_they_were(tmp_path, models, capsys, monkeypatch):
    """A damaged frame in a folder (found before anything is written), or memory running out while
    stylising (after the folder is checked): --out keeps every file of the last runs."""
    import rl_i2it.tasks.style as style_task
    one, c = str(models["one"]), save(tmp_path / "c.png", picture(32, 40))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        save(frames / f"{i}.jpg", picture(32, 40, i))
    (tmp_path / "p.csv").write_text(f"content\n{c}\n{c}\n")
    out = tmp_path / "out"
    for mode in (["--content", c, "--every-step"], ["--pairs", str(tmp_path / "p.csv"), "--every-step"],
                 ["--video", str(frames)]):
        assert main(["stylize", one, *mode, "--steps", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    files = lambda: {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}    # noqa: E731
    before = files()
    assert len([f for f in before if f.parent.name == "frames"]) == 3 and len(before) == 4 + 6 + 4    # content, pairs, video
    whole = (frames / "1.jpg").read_bytes()
    (frames / "1.jpg").write_bytes(whole[: len(whole) // 2])                # cut off: its header still reads
    fails(capsys, ["stylize", one, "--video", str(frames), "--out", str(out)], "not a readable image")
    (frames / "1.jpg").write_bytes(whole)

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB")
    monkeypatch.setattr(style_task, "stylize", out_of_memory)
    monkeypatch.setattr(style_task, "stylize_frames", lambda *args, **kwargs: map(out_of_memory, [0]))
    for mode in (["--content", c, "--every-step"], ["--pairs", str(tmp_path / "p.csv")], ["--video", str(frames)]):
        assert main(["stylize", one, *mode, "--steps", "1", "--out", str(out)]) == 2      # (after a video's bar)
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("rl-i2it: error: out of memory")
    assert files() == before


@pytest.mark.parametrize("case", ["style_to_one", "arb_without_style", "bad_video", "unreadable", "two_modes",
                                  "pairs_missing_style", "pairs_missing_file", "still_as_video", "tiny_content",
                                  "tiny_frames", "pairs_style_to_one"])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, models, capsys, case):
    c = save(tmp_path / "c.png", picture(32, 32))
    out = tmp_path / "out"
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    csv = tmp_path / "p.csv"
    csv.write_text(f"content\n{c}\n")
    csv2 = tmp_path / "p2.csv"
    csv2.write_text(f"content\n{c}\nmissing.png\n")
    tiny = save(tmp_path / "tiny.png", picture(3, 64))
    (tmp_path / "tinyframes").mkdir()
    for i in range(2):
        save(tmp_path / "tinyframes" / f"{i}.png", picture(2, 2, i))
    args = {"style_to_one": [str(models["one"]), "--content", c, "--style", str(models["style"])],
            "arb_without_style": [str(models["arb"]), "--content", c],
            "bad_video": [str(models["one"]), "--video", str(junk)],
            "unreadable": [str(models["one"]), "--content", str(bad)],
            "two_modes": [str(models["one"]), "--content", c, "--video", str(junk)],
            "pairs_missing_style": [str(models["arb"]), "--pairs", str(csv)],
            "pairs_missing_file": [str(models["one"]), "--pairs", str(csv2)],
            "still_as_video": [str(models["one"]), "--video", c],
            "tiny_content": [str(models["one"]), "--content", tiny],
            "tiny_frames": [str(models["one"]), "--video", str(tmp_path / "tinyframes")],
            "pairs_style_to_one": [str(models["one"]), "--pairs", str(csv), "--style", str(models["style"])]}[case]
    assert main(["stylize", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rl-i2it: error:") and "\n" not in err
    assert case != "pairs_missing_file" or "p2.csv, row 2 (line 3): image not found" in err
    assert case != "arb_without_style" or err.endswith("give --style")               # no style column without --pairs
    assert case != "pairs_missing_style" or err.endswith("give --style (or a style column)")
    assert case != "still_as_video" or "still image" in err
    assert case != "pairs_style_to_one" or ("trained for one style" in err and "row" not in err)   # --style's fault
    assert not case.startswith("tiny") or "needs at least 16x16" in err
    assert not out.exists()


def test_a_damaged_avi_header_is_one_line_on_stderr(tmp_path, models, capfd):
    """OpenCV's own AVI reader printed its fault ("Unexpected element...") straight to file
    descriptor 2 before our error; the open is quiet now: our one line (capfd sees fd 2)."""
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFFxxxxAVI garbage" * 10)
    assert main(["stylize", str(models["one"]), "--video", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("rl-i2it: error: cannot open video") and "\n" not in err
    print("still here", file=sys.stderr)                     # fd 2 is back after the open
    assert "still here" in capfd.readouterr().err

def test_a_cut_off_videos_note_is_a_line_of_its_own_under_the_bar(tmp_path, models, capfd):
    """The note of a video cut short comes while the frames' progress bar shows: it was glued to the
    bar's text ("...?frame/s]rl-i2it: note: ..."); now the bar steps aside for it."""
    import re

    import cv2
    path = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 32))
    for i in range(12):
        writer.write(np.roll(picture(32, 40, 3), 2 * i, axis=1))
    writer.release()
    data = path.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
    assert main(["stylize", str(models["one"]), "--video", str(tmp_path / "cut.avi"), "--steps", "1",
                 "--out", str(tmp_path / "out")]) == 0
    parts = re.split(r"[\r\n]", capfd.readouterr().err)
    assert any(p.startswith("rl-i2it: note: ") and "ended after" in p for p in parts)

def test_train_style_flags_are_checked(tmp_path, capsys):
    assert main(["train", "digits", "--style", "x.png", "--steps", "1", "--out", str(tmp_path / "d")]) == 2
    assert main(["train", "style", "--styles", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "s")]) == 2
    assert main(["train", "style", "--arbitrary", "--style", "x.png", "--steps", "1", "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "d").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("bad", [["--style", "nope.png"], ["--arbitrary", "--styles", "empty"],
                                 ["--set", "task_options.content=nowhere"]])
def test_train_with_bad_data_writes_no_run(tmp_path, models, capsys, bad):
    """A style, style folder or content folder that cannot be read: one line, exit 2, and no run
    directory left behind (the data is read before anything is written)."""
    (tmp_path / "empty").mkdir()
    bad = [str(tmp_path / b) if b in ("nope.png", "empty") else b for b in bad]
    good = ([] if "--arbitrary" in bad else ["--style", str(models["style"])]) + \
        ["--set", f"task_options.content={models['root'] / 'content'}"]
    out = tmp_path / "run"
    assert main(["train", "style", *SET, *good, *bad, "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rl-i2it: error:") and "\n" not in err and "train style" not in err
    assert not out.exists()


def test_train_video_model_and_stylize_a_video(tmp_path, models):
    import cv2
    run = tmp_path / "video"
    assert main(["train", "style", "--video", "--no-step-gru", "--style", str(models["style"]), "--out", str(run),
                 "--steps", "2", *SET, "--set", f"task_options.content={models['root'] / 'content'}",
                 "--set", "task_options.frame_steps=1"]) == 0
    import json
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task_options"]["video"] and not cfg["task_options"]["step_gru"] and cfg["task_options"]["frame_gru"]
    assert cfg["task_options"]["size"] == 32 and cfg["task_options"]["frame_steps"] == 1      # as read, not "32"
    saved = torch.load(run / "policy.pt", weights_only=False)["config"]["task_options"]
    assert json.loads(json.dumps(saved)) == cfg["task_options"]                # the model's config: the same
    path = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 32))
    for i in range(3):
        writer.write(np.roll(picture(32, 40, 3), 2 * i, axis=1))
    writer.release()
    assert main(["stylize", str(run), "--video", str(path), "--steps", "2", "--out", str(tmp_path / "v")]) == 0
    assert len(list((tmp_path / "v" / "frames").iterdir())) == 3
    assert main(["train", "style", "--no-frame-gru", "--steps", "1", "--out", str(tmp_path / "x")]) == 2


def test_eval_prints_losses_per_step(tmp_path, models, capsys):
    import json
    assert main(["eval", str(models["one"]), "--steps", "1,3", "--out", str(tmp_path / "e")]) == 0
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert set(res["steps"]) == {"1", "3"} and res["steps"]["3"]["style"] > 0
    assert main(["eval", str(models["arb"]), "--steps", "2", "--style", str(models["style"]),
                 "--out", str(tmp_path / "a")]) == 0
    assert "T=2" in capsys.readouterr().out
    fails(capsys, ["eval", str(models["one"]), "--style", str(models["style"]), "--out", str(tmp_path / "s")],
          "--style is for arbitrary-style models")


def test_a_video_model_starts_from_an_image_model(tmp_path, models, digits, capsys):
    """``--init``: the video model's planner-actor starts as the image model's, and its memory path
    starts closed, so before any update it stylises a first frame exactly as the image model."""
    from rl_i2it.config import PRESETS as DEFAULT_CONFIGS, load_config
    from rl_i2it.core.trainer import Trainer, load_policy
    from rl_i2it.errors import UserError
    from rl_i2it.tasks.digits import DigitsTask
    from rl_i2it.tasks.style import stylize, stylize_video
    from conftest import STYLE_SMALL
    opts = {**STYLE_SMALL, "n_content": 16, "content": str(models["root"] / "content"), "style": str(models["style"])}
    cfg = load_config(DEFAULT_CONFIGS / "style-video.toml",
                      {"task_options": opts, "train": {"steps": 1, "init": str(models["one"]), "fine_tunes": 1}})
    tr = Trainer(cfg, tmp_path / "v")
    assert "planner-actor from" in capsys.readouterr().out
    task, image_model, _ = load_policy(models["one"])
    frames = torch.from_numpy(picture(32, 40, 5)).permute(2, 0, 1)[None].float() / 255
    image_out = stylize(task, image_model, frames, 3)[0][-1][0]
    video_out = stylize_video(tr.task, tr.policy.eval(), frames, 3)[0][0]
    assert torch.allclose(video_out, image_out, atol=1e-5)
    fresh = Trainer(load_config(DEFAULT_CONFIGS / "style-video.toml", {"task_options": opts, "train": {"steps": 1}}),
                    tmp_path / "f")
    assert not torch.allclose(stylize_video(fresh.task, fresh.policy.eval(), frames, 3)[0][0], image_out, atol=1e-2)
    with pytest.raises(UserError, match="is a style model, this run trains digits"):
        Trainer(load_config(None, {"train": {"steps": 1, "init": str(models["one"])}}), tmp_path / "d",
                task=DigitsTask({}, data=digits))
    assert main(["train", "style", "--video", "--init", str(models["arb"]), "--style", str(models["style"]),
                 "--steps", "2", *SET, "--set", f"task_options.content={models['root'] / 'content'}",
                 "--out", str(tmp_path / "cli")]) == 0
    cap = capsys.readouterr()
    said = cap.out
    assert "tensors (the rest start fresh)" in said and "the average of the 3 fine-tunes' weights" in said
    assert "it is an arbitrary-style model, this run trains a one-style model" in cap.err     # said, not refused
    assert all((tmp_path / "cli" / f"fine_tune_{i}" / "policy.pt").is_file() for i in range(3))   # the preset's 3


def test_train_keeps_named_styles_and_makes_paths_absolute(tmp_path, monkeypatch, capsys):
    from rl_i2it.cli import _overrides, build_parser
    monkeypatch.chdir(tmp_path)
    parse = build_parser().parse_args
    assert _overrides(parse(["train", "style", "--arbitrary", "--styles", "made+photos"]))["task_options"]["styles"] \
        == "made+photos"
    assert _overrides(parse(["train", "style", "--style", "starry_night"]))["task_options"]["style"] == "starry_night"
    (tmp_path / "mine").mkdir()
    from rl_i2it.config import load_config, merge
    over = _overrides(parse(["train", "style", "--arbitrary", "--styles", "mine"]))
    assert load_config(None, merge({"task": "style"}, over)).task_options["styles"] == str(tmp_path / "mine")
    (tmp_path / "photos").mkdir()                          # a folder named as our set: ours, with a note
    over = _overrides(parse(["train", "style", "--arbitrary", "--styles", "photos"]))
    assert load_config(None, merge({"task": "style"}, over)).task_options["styles"] == "photos"
    assert "is our own 'photos', not ./photos here (give ./photos for yours)" in capsys.readouterr().err
    load_config(None, merge({"task": "style"}, over))
    assert capsys.readouterr().err == ""                                                   # said once
    over = _overrides(parse(["train", "style", "--arbitrary", "--styles", "./photos"]))
    assert load_config(None, merge({"task": "style"}, over)).task_options["styles"] == str(tmp_path / "photos")


def test_styles_go_with_any_arbitrary_config(tmp_path, monkeypatch):
    """--styles is refused without an arbitrary model, and taken by a video one made arbitrary."""
    from rl_i2it.core import trainer
    seen = {}
    monkeypatch.setattr(trainer, "train_run", lambda cfg, run, **kw: seen.setdefault("cfg", cfg) and
                        {"updates": 0, "seconds": 0.0})
    (tmp_path / "mine").mkdir()
    assert main(["train", "style", "--video", "--styles", str(tmp_path / "mine"), "--steps", "1",
                 "--out", str(tmp_path / "v")]) == 2 and not seen
    assert main(["train", "style", "--video", "--set", "task_options.arbitrary=true", "--styles", str(tmp_path / "mine"),
                 "--steps", "1", "--out", str(tmp_path / "v")]) == 0
    assert seen["cfg"].task_options["styles"] == str(tmp_path / "mine")


def test_strip_thumbnails_keep_a_panorama_readable():
    """strip.png's panels: the longer side 256, but a panorama keeps a shorter side of 64 (it was a few
    pixels tall); nothing is enlarged."""
    from rl_i2it.cli import _thumb
    assert _thumb(torch.rand(3, 1080, 1920)).shape == (3, 144, 256)
    assert _thumb(torch.rand(3, 200, 4000)).shape == (3, 64, 1280)
    small, thin = torch.rand(3, 40, 50), torch.rand(3, 50, 4000)
    assert _thumb(small) is small and _thumb(thin) is thin
