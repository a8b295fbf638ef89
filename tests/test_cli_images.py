"""`rl-i2it inpaint` and `rl-i2it translate --source`: outputs, and bad input -> one line, exit 2,
nothing written."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import IMG_SMALL
from rl_i2it.cli import main
from rl_i2it.config import load_config
from rl_i2it.core.trainer import Trainer
from rl_i2it.tasks import task_class


@pytest.fixture(scope="module")
def models(tmp_path_factory, photo_data):
    runs = {}
    for task in ("inpainting", "translation"):
        run = tmp_path_factory.mktemp(task)
        data = photo_data if task == "translation" else {k: (t, t) for k, (_, t) in photo_data.items()}
        cfg = load_config(None, {"task": task, "task_options": IMG_SMALL,
                                 "train": {"steps": 2, "n_envs": 4, "horizon": 2, "learning_starts": 8,
                                           "replay_size": 64}, "sac": {"batch_size": 4}})
        Trainer(cfg, run, task=task_class(task)(cfg.task_options, data=data), verbose=False).train()
        runs[task] = run
    return runs


def save(path, arr, mode="RGB"):
    Image.fromarray(arr, mode).save(path)
    return str(path)


def rgb(size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(size, size, 3, generator=g) * 255).byte().numpy()


def test_inpaint_writes_result_steps_and_grid(tmp_path, models, capsys):
    img = save(tmp_path / "face.png", rgb())
    mask = torch.zeros(16, 16, dtype=torch.uint8)
    mask[2:6, 3:9] = 255
    m = save(tmp_path / "mask.png", mask.numpy(), "L")
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", m, "--steps", "3", "--every-step",
                 "--out", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["grid.png", "result.png", "step_01.png", "step_02.png", "step_03.png"]
    assert np.array_equal(np.array(Image.open(tmp_path / "out" / "step_03.png")),
                          np.array(Image.open(tmp_path / "out" / "result.png")))
    out = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "result.png")))
    keep = torch.from_numpy(mask.numpy()) == 0
    assert torch.equal(out[keep], torch.from_numpy(rgb())[keep])         # pixels outside the hole untouched
    printed = capsys.readouterr().out
    assert "24-pixel hole" in printed
    assert "trained on one 8x8 centre hole" in printed and "reaches outside it" in printed   # rows 2-5: above it
    ones = save(tmp_path / "mask01.png", (mask.numpy() > 0).astype(np.uint8), "L")   # 0s and 1s, as numpy saves
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", ones, "--out", str(tmp_path / "out01")]) == 0
    assert "24-pixel hole" in capsys.readouterr().out
    grey = mask.numpy().copy()
    grey[0, 0] = 1                                # a 0-255 mask keeps its 0.5 threshold: a stray 1 is no hole
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m2.png", grey, "L"),
                 "--out", str(tmp_path / "out2")]) == 0
    assert "24-pixel hole" in capsys.readouterr().out
    again = tmp_path / "out" / "result.png"          # its own result as the input, in the same --out: refused
    before = again.read_bytes()
    assert main(["inpaint", str(models["inpainting"]), str(again), "--out", str(tmp_path / "out")]) == 2
    assert "result.png lies in --out" in capsys.readouterr().err and again.read_bytes() == before


def test_a_second_run_into_the_same_folder_leaves_only_its_own_steps(tmp_path, models, capsys):
    img = save(tmp_path / "face.png", rgb())
    out = tmp_path / "out"
    assert main(["inpaint", str(models["inpainting"]), img, "--steps", "3", "--every-step", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["inpaint", str(models["inpainting"]), img, "--steps", "1", "--every-step", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "notes.txt", "result.png", "step_01.png"]
    assert main(["inpaint", str(models["inpainting"]), img, "--steps", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "notes.txt", "result.png"]   # steps only if asked
    assert main(["inpaint", str(models["inpainting"]), img, "--out", ""]) == 2
    assert "--out is empty: give a folder" in capsys.readouterr().err


def test_inpaint_takes_the_face_square_of_other_sizes_and_uses_the_centre_hole(tmp_path, models, capsys):
    """A 32x40 photo: the model sees its centred 32x32 square (as the training faces were cut),
    resized to 16x16; the fill goes back into the hole at full resolution, nothing else moves."""
    big = np.concatenate([rgb(32), rgb(32, 1)[:8]], 0)          # 32 wide, 40 high
    img = save(tmp_path / "big.png", big)
    assert main(["inpaint", str(models["inpainting"]), img, "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "sees the 32x32 square at column 0, row 4" in text and "32x32 resized to the model's 16x16" in text
    assert "the largest centred square of the 32x40 photo" in text and "CelebA" not in text   # not a face crop
    assert "back into the hole at the image's own resolution (32x32)" in text
    out = np.array(Image.open(tmp_path / "o" / "result.png"))
    assert out.shape == (40, 32, 3)                              # the given image's size
    hole = np.zeros((40, 32), bool)                              # the model's centre hole (8x8 of 16), scaled,
    hole[4 + 8:4 + 24, 8:24] = True                              # in the square 4 rows down
    assert np.array_equal(out[~hole], big[~hole])               # the rest untouched, at full resolution
    assert not np.array_equal(out[hole], big[hole])
    assert not (tmp_path / "o" / "step_10.png").exists()         # no step files without --every-step
    m = np.zeros((40, 32), np.uint8)
    m[1:3, 10:20] = 255                                          # above the square: the model cannot see it
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m.png", m, "L"),
                 "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "reaches outside the 32x32 square at column 0, row 4" in err and "inverted" not in err
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m.png", 255 - m, "L"),
                 "--out", str(tmp_path / "o2")]) == 2                    # a mask drawn the other way round: asked
    assert "inside it (is the mask inverted? white or nonzero = hole)" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_inpaint_takes_the_transparent_pixels_of_an_image_as_its_hole(tmp_path, models, capsys):
    """A face with a hole erased to transparent (as image editors mark one): that is the hole, said
    in a line; with --mask the mask is the hole; a transparent background (it reaches the border)
    is not a hole. Before, the erased
    pixels were read as black content and the centre hole filled instead."""
    face = rgb()
    rgba = np.concatenate([face, np.full((16, 16, 1), 255, np.uint8)], 2)
    rgba[2:6, 3:8, 3] = 0                                        # off the centre hole the model trained on
    img = save(tmp_path / "erased.png", rgba, "RGBA")
    assert main(["inpaint", str(models["inpainting"]), img, "--steps", "2", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "its 20 transparent pixels are the hole" in printed
    assert "PSNR" not in printed                # against what an editor left under the erased pixels: meaningless
    out = np.array(Image.open(tmp_path / "o" / "result.png"))
    hole = rgba[..., 3] == 0
    assert np.array_equal(out[~hole], face[~hole]) and not np.array_equal(out[hole], face[hole])
    m = np.zeros((16, 16), np.uint8)
    m[6:10, 6:10] = 255
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m.png", m, "L"),
                 "--steps", "1", "--out", str(tmp_path / "o2")]) == 0
    assert "--mask gives the hole" in capsys.readouterr().out
    out = np.array(Image.open(tmp_path / "o2" / "result.png"))
    assert np.array_equal(out[..., 3], rgba[..., 3])            # not the hole: transparent still
    assert np.array_equal(out[..., :3][m == 0], face[m == 0])   # the erased pixels kept as their colour
    rgba[..., 3] = 0
    rgba[3:13, 3:13, 3] = 255                                    # a cut-out: the background is transparent
    assert main(["inpaint", str(models["inpainting"]), save(tmp_path / "cut.png", rgba, "RGBA"), "--steps", "1",
                 "--out", str(tmp_path / "o3")]) == 0
    assert "they reach its border (a cut-out's background?)" in capsys.readouterr().out
    out = np.array(Image.open(tmp_path / "o3" / "result.png"))
    assert out.shape == (16, 16, 4) and np.array_equal(out[..., 3], rgba[..., 3])   # the cut-out's alpha kept
    out = out[..., :3]
    centre = np.zeros((16, 16), bool)
    centre[4:12, 4:12] = True                                    # the model's own centre hole instead
    assert np.array_equal(out[~centre], face[~centre]) and not np.array_equal(out[centre], face[centre])
    assert Image.open(tmp_path / "o" / "result.png").mode == "RGB"     # an erased hole, filled: opaque


def test_a_mask_of_the_default_hole_and_an_inverted_mask(tmp_path, models, capsys):
    """The model's own centre hole drawn at a size that straddles its pixel grid (22 -> 16) is no
    hole "outside" it (it was warned about); a mask whose hole is most of the image is asked about."""
    img = save(tmp_path / "f.png", rgb(22))
    m = np.zeros((22, 22), np.uint8)
    m[5:16, 5:16] = 255                                         # the centre 8 of 16 is 5.5-16.5 at 22 px: a row more
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m.png", m, "L"),
                 "--steps", "1", "--out", str(tmp_path / "o")]) == 0
    assert "warning" not in capsys.readouterr().out
    inverted = 255 - m
    inverted[:, :2] = 0                                         # (a border left: not the whole image)
    main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "inv.png", inverted, "L"),
          "--steps", "1", "--out", str(tmp_path / "o2")])
    assert "is it inverted?" in capsys.readouterr().out

def test_inpaint_fills_a_small_hole_of_a_large_image(tmp_path, models, capsys):
    img = save(tmp_path / "big.png", rgb(64))
    m = torch.zeros(64, 64, dtype=torch.uint8)
    m[20, 30:32] = 255                                          # two pixels: a quarter of one model pixel
    assert main(["inpaint", str(models["inpainting"]), img, "--mask", save(tmp_path / "m.png", m.numpy(), "L"),
                 "--out", str(tmp_path / "o")]) == 0
    out = np.array(Image.open(tmp_path / "o" / "result.png"))
    keep = m.numpy() == 0
    assert np.array_equal(out[keep], rgb(64)[keep]) and not np.array_equal(out[~keep], rgb(64)[~keep])
    printed = capsys.readouterr().out
    assert "2-pixel hole" in printed and "warning" not in printed      # inside the centre hole it was trained on


def test_what_lies_under_the_hole_never_reaches_the_model(tmp_path, models):
    """Two photos alike but under the hole fill it alike: the image is shrunk to the model's size
    with its hole already filled (the antialiasing filter carried up to an eighth of the hidden
    pixels into the known ones around the hole; a review measured it)."""
    m = torch.zeros(56, 56, dtype=torch.uint8)
    m[20:37, 19:35] = 255                                       # off the model's pixel grid (56 -> 16)
    mask = save(tmp_path / "m.png", m.numpy(), "L")
    a, b = rgb(56), rgb(56)
    b[m.numpy() > 0] = 255 - b[m.numpy() > 0]                   # other contents under the hole
    outs = []
    for name, arr in (("a", a), ("b", b)):
        assert main(["inpaint", str(models["inpainting"]), save(tmp_path / f"{name}.png", arr), "--mask", mask,
                     "--steps", "2", "--out", str(tmp_path / name)]) == 0
        outs.append(np.array(Image.open(tmp_path / name / "result.png")))
    hole = m.numpy() > 0
    assert np.array_equal(outs[0][hole], outs[1][hole]) and np.array_equal(outs[1][~hole], b[~hole])

@pytest.mark.parametrize("case,message", [("grey", "grey image"), ("mask_size", "same size"),
                                          ("mask_empty", "empty"), ("mask_dim", "brightest pixel is 100 of 255"),
                                          ("not_image", "not a readable image"),
                                          ("mask_everywhere", "whole image at the model's 16x16"),
                                          ("wrong_model", "needs an inpainting model"),
                                          ("one_pixel", "the model's hole covers no pixel")])
def test_inpaint_bad_input(tmp_path, models, capsys, case, message):
    img = save(tmp_path / "face.png", rgb())
    args = ["inpaint", str(models["inpainting"]), img, "--out", str(tmp_path / "out")]
    if case == "grey":
        args[2] = save(tmp_path / "grey.png", rgb()[..., 0], "L")
    elif case == "mask_size":
        args += ["--mask", save(tmp_path / "m.png", torch.full((8, 8), 255, dtype=torch.uint8).numpy(), "L")]
    elif case == "mask_empty":
        args += ["--mask", save(tmp_path / "m.png", torch.zeros(16, 16, dtype=torch.uint8).numpy(), "L")]
    elif case == "mask_dim":                      # a hole painted grey: said why it reads as empty
        args += ["--mask", save(tmp_path / "m.png", torch.full((16, 16), 100, dtype=torch.uint8).numpy(), "L")]
    elif case == "mask_everywhere":               # a hole in every 2x2 block of a 32x32 image: all at 16x16
        args[2] = save(tmp_path / "big.png", rgb(32))
        m = torch.zeros(32, 32, dtype=torch.uint8)
        m[::2, ::2] = 255
        args += ["--mask", save(tmp_path / "m.png", m.numpy(), "L")]
    elif case == "one_pixel":
        args[2] = save(tmp_path / "dot.png", rgb(1))
    elif case == "not_image":
        (tmp_path / "x.png").write_text("no")
        args[2] = str(tmp_path / "x.png")
    else:
        args[1] = str(models["translation"])
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1
    assert out == ""                        # no "resized to the model's" line before the error
    assert not (tmp_path / "out").exists()


def test_translate_source(tmp_path, models, capsys):
    src = save(tmp_path / "src.png", rgb(16, 1))
    tgt = save(tmp_path / "tgt.png", rgb(16, 2))
    (tmp_path / "p.csv").write_text("moving,fixed\nsrc.png,tgt.png\n")
    assert main(["translate", str(models["translation"]), "--pairs", str(tmp_path / "p.csv"),
                 "--out", str(tmp_path / "no")]) == 2           # it named --moving/--fixed, not given
    assert "translate --pairs needs a digits model, this one is 'translation' (a translation model takes --source" \
        in capsys.readouterr().err
    assert main(["translate", str(models["translation"]), "--source", src, "--target", tgt, "--steps", "2",
                 "--out", str(tmp_path / "out")]) == 0
    assert {"result.png", "grid.png"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert Image.open(tmp_path / "out" / "result.png").mode == "RGB"
    cut = np.concatenate([rgb(16, 1), np.full((16, 16, 1), 255, np.uint8)], 2)
    cut[:, :5, 3] = 0                                               # a transparent margin: kept on the result
    assert main(["translate", str(models["translation"]), "--source", save(tmp_path / "cut.png", cut, "RGBA"),
                 "--steps", "1", "--out", str(tmp_path / "cut")]) == 0
    got = np.array(Image.open(tmp_path / "cut" / "result.png"))
    assert got.shape == (16, 16, 4) and np.array_equal(got[..., 3], cut[..., 3])
    out = capsys.readouterr().out
    assert "PSNR against --target" in out and "resized to the source's" not in out
    wide = save(tmp_path / "wide.png", rgb(16, 2)[:4])                  # 16x4: scored, but said
    assert main(["translate", str(models["translation"]), "--source", src, "--target", wide, "--steps", "1",
                 "--out", str(tmp_path / "out")]) == 0
    assert "--target 16x4 resized to the source's 16x16 for the PSNR" in capsys.readouterr().out
    capsys.readouterr()
    (tmp_path / "bad.png").write_text("no")                             # a source to resize, a bad target
    assert main(["translate", str(models["translation"]), "--source", save(tmp_path / "big.png", rgb(32, 1)),
                 "--target", str(tmp_path / "bad.png"), "--out", str(tmp_path / "o2")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "bad.png" in err
    assert main(["translate", str(models["inpainting"]), "--source", src, "--out", str(tmp_path / "o2")]) == 2
    assert main(["translate", str(models["translation"]), "--target", tgt, "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()


def test_a_large_edge_map_keeps_its_lines_at_the_models_size(tmp_path, models, capsys):
    """Edge maps larger than the model: every line stays an edge wherever it crosses the model's
    pixel grid, 1 or 2 px wide, at ratios 8 and 2.34 (an antialiased shrink left them light grey;
    a first version lost 1-px lines past ratio 2 and 2-px lines split by a model pixel's border);
    light lines on dark are read inverted; the command says what it did."""
    from rl_i2it.cli import _edge_map_to, _resized
    for side, size, rows in ((128, 16, [40, 41]), (128, 16, [47, 48]), (128, 16, [50]), (150, 64, [70]), (150, 64, [4])):
        edges = torch.ones(3, side, side)
        edges[:, rows, :] = 0                                 # a horizontal line
        edges[:, :, 90:92] = 0                                # and a vertical one
        small, inverted = _edge_map_to(edges, size)
        assert small.shape == (3, size, size) and set(small.unique().tolist()) == {0.0, 1.0} and not inverted
        dark = small[0] == 0
        line_rows = dark.all(1).nonzero().flatten().tolist()
        assert 1 <= len(line_rows) <= 2 and dark.all(0).sum() >= 1, (side, rows)
        assert dark.float().mean() < 0.25                     # lines, not a dark page
        assert _resized(edges, (size, size)).min() > 0.5 or side == 150      # what the plain shrink gave
    small, inverted = _edge_map_to(1 - edges, 64)             # raw Canny: white lines on black
    assert inverted and (small[0] == 0).float().mean() < 0.25
    big = torch.ones(32, 32, 3)
    big[10, :] = 0
    src = save(tmp_path / "e.png", (big.numpy() * 255).astype(np.uint8))
    assert main(["translate", str(models["translation"]), "--source", src, "--steps", "1",
                 "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "the 32x32 edge map brought to the model's 16x16 as edges" in printed   # (an edges model: the default)


def test_translate_writes_at_the_source_size_and_colours_on_its_own_luminance(tmp_path, models, capsys):
    """A 24x20 source (the model's 16x16): every output at 24x20; a grey -> colour model keeps
    the source's own luminance and adds the model's colours."""
    from rl_i2it.data.paired import luminance
    photo = np.concatenate([rgb(24, 3), rgb(24, 4)], 0)[:20]     # 24 wide, 20 high
    src = save(tmp_path / "src.png", photo)
    assert main(["translate", str(models["translation"]), "--source", src, "--out", str(tmp_path / "a")]) == 0
    assert "at 24x20" in capsys.readouterr().out
    assert all(np.array(Image.open(p)).shape == (20, 24, 3) for p in (tmp_path / "a").glob("*_*.png"))
    grey_model = tmp_path / "grey.pt"                            # the same nets, told they colourise
    obj = torch.load(models["translation"] / "policy.pt", weights_only=True)
    obj["config"]["task_options"]["data"] = "grey"
    torch.save(obj, grey_model)
    assert main(["translate", str(grey_model), "--source", src, "--out", str(tmp_path / "g")]) == 0
    assert "source's own luminance" in capsys.readouterr().out
    out = torch.from_numpy(np.array(Image.open(tmp_path / "g" / "result.png"))).permute(2, 0, 1)[None]
    given = luminance(torch.from_numpy(photo).permute(2, 0, 1)[None])
    assert out.shape == (1, 3, 20, 24)
    assert (luminance(out).int() - given.int()).abs().max() <= 2       # the photo's own detail, at full size
    assert not (out[:, 0] == out[:, 1]).all()                          # and colour


def test_eval_an_inpainting_run_on_a_face_folder(tmp_path, capsys):
    """A run trained on a user's face folder is scored on its test split; not once the folder changed."""
    from conftest import make_photos
    folder = tmp_path / "faces"
    folder.mkdir()
    names = [f"{i:06d}" for i in [*range(1, 111), *range(900, 904)]]         # CelebA's numbers: 4 test faces
    for name, img in zip(names, make_photos(len(names), 16, 3)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
    cfg = load_config(None, {"task": "inpainting", "task_options": {**IMG_SMALL, "data": str(folder)},
                             "train": {"steps": 2, "n_envs": 4, "horizon": 2, "learning_starts": 8,
                                       "replay_size": 64}, "sac": {"batch_size": 4}})
    Trainer(cfg, tmp_path / "run", verbose=False).train()
    assert main(["eval", str(tmp_path / "run"), "--steps", "1,3", "--no-features", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "RL-I2IT T=3" in out and "PSNR hole" in out and "test split (4 images)" in out
    assert "FID on" not in out                                     # no FID measured: no note about it
    res = __import__("json").loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert set(res["steps"]) == {"1", "3"} and res["steps"]["3"]["psnr_hole"] > 0
    assert main(["eval", str(tmp_path / "run"), "--steps", "1", "--no-features", "--split", "valid"]) == 0
    assert json.loads((tmp_path / "run" / "eval-valid" / "results.json").read_text())["split"] == "valid"
    assert set(json.loads((tmp_path / "run" / "eval" / "results.json").read_text())["steps"]) == {"1", "3"}  # kept
    from test_cli import fails
    fails(capsys, ["eval", str(tmp_path / "run"), "--steps", "1", "--out", str(tmp_path / "e")],
          "LPIPS (AlexNet) needs at least 31x31; give --no-features")    # 16x16: said, not AlexNet's traceback
    assert not (tmp_path / "e").exists()
    assert main(["eval", str(tmp_path / "run"), "--no-features", "--out", str(tmp_path / "e3")]) == 0
    res = __import__("json").loads((tmp_path / "e3" / "results.json").read_text())
    assert set(res["steps"]) == {"1", "5", "10"}                  # an image model's default, not digits' 1,5,10,20
    (folder / "000110.png").rename(tmp_path / "000110.png")           # a training face gone: other data
    fails(capsys, ["eval", str(tmp_path / "run"), "--no-features", "--out", str(tmp_path / "e4")],
          "was trained on other data than its task_options give now")
    assert not (tmp_path / "e4").exists()


def test_eval_of_a_one_image_split_leaves_fid_out(tmp_path, capsys, monkeypatch):
    """FID needs a covariance of two images or more: with one, the other metrics, and a line saying so."""
    from conftest import make_photos
    import rl_i2it.tasks.imagegen as imagegen
    from rl_i2it.features.vgg import AlexNetFeatures
    folder = tmp_path / "faces"
    folder.mkdir()
    names = [f"{i:06d}" for i in [*range(1, 111), 900]]                     # one test face
    for name, img in zip(names, make_photos(len(names), 16, 3)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
    cfg = load_config(None, {"task": "inpainting", "task_options": {**IMG_SMALL, "data": str(folder)},
                             "train": {"steps": 1, "n_envs": 4, "horizon": 2, "learning_starts": 8,
                                       "replay_size": 64}, "sac": {"batch_size": 4}})
    Trainer(cfg, tmp_path / "run", verbose=False).train()
    asked = []
    monkeypatch.setattr(AlexNetFeatures, "min_size", 1)            # 16 px: no real LPIPS here, the wiring is checked
    monkeypatch.setattr(imagegen, "evaluate", lambda *a, **k: asked.append(k) or {1: {"psnr": 20.0}})
    assert main(["eval", str(tmp_path / "run"), "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert asked[0]["fid"] is False and asked[0]["features"] is True
    assert "test split (1 image)" in out and "FID needs 2 images or more" in out
