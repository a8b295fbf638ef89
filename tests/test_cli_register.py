"""`rl-i2it register` on a user's NIfTI pair: outputs on the fixed image's grid and affine, and
one clear line + exit 2 (nothing written) for bad input."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import REG_SMALL, inverse_affine, known_affine, make_anatomy
from rl_i2it.cli import main
from rl_i2it.config import load_config
from rl_i2it.core.trainer import Trainer
from rl_i2it.data.volumes import write_nifti
from rl_i2it.ops.metrics import jacobian_determinant
from rl_i2it.tasks.registration import RegistrationTask
from test_cli import fails, run_dir  # noqa: F401  (the digits run, for the wrong-model case)

AFFINE = np.array([[1.5, 0, 0, -20], [0, 1.5, 0, 10], [0, 0, 1, 0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory, reg_pairs):
    out = tmp_path_factory.mktemp("reg") / "r"
    cfg = load_config(None, {"task": "registration", "task_options": REG_SMALL,
                             "train": {"n_envs": 4, "horizon": 2, "learning_starts": 4, "steps": 3, "replay_size": 32},
                             "sac": {"batch_size": 4}})
    Trainer(cfg, out, task=RegistrationTask(REG_SMALL, pairs=reg_pairs), verbose=False).train()
    return out


@pytest.fixture
def pair(tmp_path):
    imgs, labs = make_anatomy(2, 40, 2, seed=3)
    files = {}
    for i, role in enumerate(("moving", "fixed")):
        files[role] = tmp_path / f"{role}.nii.gz"
        write_nifti(files[role], imgs[i, 0].numpy() * 900 + 100, AFFINE)
        files[role + "_labels"] = tmp_path / f"{role}_labels.nii.gz"
        write_nifti(files[role + "_labels"], labs[i].numpy(), AFFINE)
    return files


def args(run, p, out, *extra):
    return ["register", str(run), "--moving", str(p["moving"]), "--fixed", str(p["fixed"]),
            "--moving-labels", str(p["moving_labels"]), "--fixed-labels", str(p["fixed_labels"]),
            "--out", str(out), *extra]


def test_register_writes_nifti_on_the_fixed_grid(reg_run, pair, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(args(reg_run, pair, out, "--steps", "3", "--every-step")) == 0
    said = capsys.readouterr().out
    assert "label Dice" in said.split("folded voxels (det J <= 0)")[0]
    assert "step_01..03.nii.gz" in said and (out / "step_03.nii.gz").is_file()     # the files it lists
    warped = nib.load(str(out / "warped.nii.gz"))
    assert warped.shape == (40, 40) and np.allclose(warped.affine, AFFINE)
    field = nib.load(str(out / "field.nii.gz"))
    assert field.shape == (40, 40, 2) and np.isfinite(np.asarray(field.dataobj)).all()
    itk = nib.load(str(out / "field_itk.nii.gz"))         # LPS mm: x and y negated, x 1.5 mm voxels
    assert itk.shape == (40, 40, 1, 1, 2) and np.allclose(itk.affine, AFFINE)
    assert np.allclose(np.asarray(itk.dataobj)[:, :, 0, 0], -1.5 * np.asarray(field.dataobj), atol=1e-5)
    det = jacobian_determinant(torch.from_numpy(np.moveaxis(np.asarray(field.dataobj), -1, 0))[None])[0].numpy()
    jac = nib.load(str(out / "jacobian.nii.gz"))
    assert jac.shape == (40, 40) and np.allclose(np.asarray(jac.dataobj), det, atol=1e-5)
    assert np.abs(det - 1).max() > 1e-3                                    # a real field, not the identity
    labels = np.asarray(nib.load(str(out / "warped_labels.nii.gz")).dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and labels.any()
    assert (out / "preview.png").is_file() and (out / "step_03.nii.gz").is_file()
    assert main(args(reg_run, pair, tmp_path / "ad", "--adaptive", "--tol=-1e9", "--steps", "4")) == 2
    assert "--tol must be > 0" in capsys.readouterr().err
    assert main(args(reg_run, pair, tmp_path / "ad", "--tol", "0.1")) == 2       # --tol alone: no adaptive
    assert "--tol goes with --adaptive" in capsys.readouterr().err
    no_moving = [a for a in args(reg_run, pair, tmp_path / "ad") if a not in ("--moving-labels", str(pair["moving_labels"]))]
    assert main(no_moving) == 2 and "--fixed-labels goes with --moving-labels" in capsys.readouterr().err
    assert not (tmp_path / "ad").exists()
    assert main(args(reg_run, pair, tmp_path / "ad", "--adaptive", "--every-step")) == 0
    text = capsys.readouterr()
    assert "registered in" in text.out and "affines" not in text.err
    taken = int(text.out.split("registered in ")[1].split()[0])          # step files: the steps kept, no more
    assert sorted(p.name for p in (tmp_path / "ad").glob("step_*")) == [f"step_{t:02d}.nii.gz" for t in range(1, taken + 1)]
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    shifted[1, 1] *= 2                        # moving voxels twice as tall: each fixed voxel takes twice the volume
    write_nifti(pair["moving"], np.asarray(nib.load(str(pair["moving"])).dataobj), shifted)
    assert main(args(reg_run, pair, tmp_path / "lab", "--steps", "1")) == 2     # labels left on the old header
    assert "a label map must lie on its image's grid" in capsys.readouterr().err
    write_nifti(pair["moving_labels"], np.asarray(nib.load(str(pair["moving_labels"])).dataobj), shifted)
    for extra, note, scale in (((), "resampled onto --fixed's grid, through their headers", 1),
                               (("--by-voxel",), "voxel to voxel", 2)):
        assert main(args(reg_run, pair, tmp_path / "af", "--steps", "1", *extra)) == 0
        assert note in capsys.readouterr().err                              # said, not refused
        field = np.moveaxis(np.asarray(nib.load(str(tmp_path / "af" / "field.nii.gz")).dataobj), -1, 0)
        det = jacobian_determinant(torch.from_numpy(field)[None])[0].numpy()
        assert np.allclose(np.asarray(nib.load(str(tmp_path / "af" / "jacobian.nii.gz")).dataobj), scale * det, atol=1e-5)
    warped = np.asarray(nib.load(str(tmp_path / "af" / "warped.nii.gz")).dataobj)
    assert warped.shape == (40, 40)


def test_register_reads_and_writes_a_header_in_microns(reg_run, pair, tmp_path):
    """A microscope's NIfTI (world in microns): read as millimetres, as ITK reads it, so the
    registration and the ITK field's millimetre vectors are those of the same pair in mm; the
    outputs keep the microns of their header (the field's grid would otherwise read 1000x too large)."""
    flags = {}
    for role in ("moving", "fixed"):
        img = nib.load(str(pair[role]))
        micron = nib.Nifti1Image(np.asarray(img.dataobj), np.diag([1000.0, 1000, 1000, 1]) @ img.affine)
        micron.header.set_xyzt_units("micron")
        nib.save(micron, str(tmp_path / f"{role}_um.nii.gz"))
        flags[role] = [f"--{role}", str(tmp_path / f"{role}_um.nii.gz")]
    assert main(["register", str(reg_run), *flags["moving"], *flags["fixed"], "--steps", "2", "--out",
                 str(tmp_path / "um")]) == 0
    assert main(["register", str(reg_run), "--moving", str(pair["moving"]), "--fixed", str(pair["fixed"]),
                 "--steps", "2", "--out", str(tmp_path / "mm")]) == 0
    for name in ("warped.nii.gz", "field_itk.nii.gz", "jacobian.nii.gz"):
        um, mm = (nib.load(str(tmp_path / d / name)) for d in ("um", "mm"))
        assert um.header.get_xyzt_units()[0] == "micron" and np.allclose(um.affine[:3], 1000 * mm.affine[:3])
        assert np.allclose(np.asarray(um.dataobj), np.asarray(mm.dataobj), atol=1e-5), name


def test_register_keeps_any_label_ids(reg_run, pair, tmp_path, capsys):
    """Atlas ids such as 484682470 (Allen CCF) or 40000 come back exactly (int16 and float32 would
    corrupt them), and Dice counts them as labels, not as one merged label."""
    labs = np.asarray(nib.load(str(pair["moving_labels"])).dataobj).astype(np.int64)
    big = np.array([0, 484682470, 484682471, 40000], np.int32)[np.clip(labs, 0, 3)]
    for role in ("moving", "fixed"):
        write_nifti(pair[role + "_labels"], big, AFFINE)
    assert main(args(reg_run, pair, tmp_path / "out", "--steps", "1")) == 0
    assert "label Dice 1.000 ->" in capsys.readouterr().out           # the same map on both sides
    out = np.asarray(nib.load(str(tmp_path / "out" / "warped_labels.nii.gz")).dataobj)
    write_nifti(pair["fixed_labels"], (labs > 0).astype(np.int16) * 7, AFFINE)         # ids of another atlas
    assert main(args(reg_run, pair, tmp_path / "other", "--steps", "1")) == 0
    assert "share no label id" in capsys.readouterr().err
    assert out.dtype == np.int32 and set(np.unique(out)) <= {0, 484682470, 484682471, 40000}
    assert (out == 484682471).any() and (out == 40000).any()
    other = np.asarray(nib.load(str(tmp_path / "other" / "warped_labels.nii.gz")).dataobj)
    assert other.dtype == np.int32                    # its own ids' type: the fixed atlas's 7s do not shrink it
    write_nifti(pair["moving_labels"], (labs > 0).astype(np.int16), AFFINE)
    write_nifti(pair["fixed_labels"], big, AFFINE)
    assert main(args(reg_run, pair, tmp_path / "small", "--steps", "1")) == 0
    small = nib.load(str(tmp_path / "small" / "warped_labels.nii.gz"))
    assert small.get_data_dtype() == np.int16          # ids 0 and 1: int16, whatever the fixed atlas holds


def test_register_affine_aligns_a_rotated_shifted_pair_first(reg_run, pair, tmp_path, capsys):
    """--affine: a moving image rotated by 9 degrees, scaled and shifted by 4 voxels is aligned
    before the steps (labels' Dice far above the steps alone), and field.nii.gz carries the affine:
    the moving labels warped by it land on the fixed ones; eval --affine starts every method from it."""
    import json
    import re

    from rl_i2it.ops.affine import affine_field
    from rl_i2it.ops.warp import warp
    imgs = {k: torch.from_numpy(np.asarray(nib.load(str(pair[k])).dataobj).astype(np.float32))[None, None]
            for k in ("fixed", "fixed_labels")}
    back = affine_field(inverse_affine(known_affine(2, 40)), (40, 40))
    write_nifti(pair["moving"], warp(imgs["fixed"], back)[0, 0].numpy(), AFFINE)
    write_nifti(pair["moving_labels"], warp(imgs["fixed_labels"], back, mode="nearest")[0, 0].numpy().astype(np.int16), AFFINE)
    dice = {}
    for flag in ((), ("--affine",)):
        assert main(args(reg_run, pair, tmp_path / f"out{len(flag)}", "--steps", "2", *flag)) == 0
        text = capsys.readouterr().out
        dice[flag] = [float(x) for x in re.search(r"label Dice ([\d.]+) -> ([\d.]+)", text).groups()]
    assert "affine pre-alignment: global NCC" in text
    assert dice[()][1] < 0.85 and dice[("--affine",)][1] > dice[()][1] + 0.1, dice
    field = np.moveaxis(np.asarray(nib.load(str(tmp_path / "out1" / "field.nii.gz")).dataobj), -1, 0)
    moved = warp(torch.from_numpy(np.asarray(nib.load(str(pair["moving_labels"])).dataobj).astype(np.float32))[None, None],
                 torch.from_numpy(field.astype(np.float32))[None], mode="nearest")[0, 0]
    assert (moved.round() == imgs["fixed_labels"][0, 0]).float().mean() > 0.9
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels,fixed_labels\n"
                                        f"{pair['moving']},{pair['fixed']},{pair['moving_labels']},{pair['fixed_labels']}\n")
    scored = {}
    for flag in ((), ("--affine",)):                       # eval --affine: the same start for every method
        assert main(["eval", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "2", "--onestep",
                     str(reg_run), "--out", str(tmp_path / f"ev{len(flag)}"), *flag]) == 0
        scored[flag] = json.loads((tmp_path / f"ev{len(flag)}" / "results.json").read_text())["methods"]
    assert scored[("--affine",)]["t2"]["dice"] > scored[()]["t2"]["dice"] + 0.1
    assert scored[("--affine",)]["onestep"]["dice"] > scored[()]["onestep"]["dice"] + 0.1
    assert scored[("--affine",)]["identity"] == scored[()]["identity"]
    assert json.loads((tmp_path / "ev1" / "results.json").read_text())["affine"] is True
    assert json.loads((tmp_path / "ev0" / "results.json").read_text())["affine"] is False


def test_register_affine_brings_in_what_lies_beyond_the_fixed_grid(reg_run, tmp_path, capsys):
    """--affine on a moving image that reaches beyond the fixed one (a whole scan against a crop of
    the same scene), its header 6 mm off: the fit sees the moving content beyond the fixed grid (on
    the moving image cut to the fixed grid it read zeros there and preferred an 18 % squeeze), and
    warped.nii.gz samples the moving file through the headers, its last rows from beyond the fixed
    grid (they were zeros blended in)."""
    import re
    y, x = np.mgrid[0:80, 0:80].astype(np.float64)
    scene = 100 + 50 * np.sin(x / 5) * np.cos(y / 7) + 30 * np.sin((x + y) / 11)     # content everywhere
    at_fixed, at_moving = np.eye(4), np.eye(4)
    at_fixed[:3, 3], at_moving[0, 3] = (20, 20, 0), 6            # moving voxel i lies at x = i + 6 mm
    write_nifti(tmp_path / "f.nii.gz", scene[20:60, 20:60].astype(np.float32), at_fixed)
    write_nifti(tmp_path / "m.nii.gz", scene.astype(np.float32), at_moving)
    assert main(["register", str(reg_run), "--moving", str(tmp_path / "m.nii.gz"), "--fixed", str(tmp_path / "f.nii.gz"),
                 "--affine", "--steps", "1", "--out", str(tmp_path / "out")]) == 0
    ncc = re.search(r"global NCC [\d.]+ -> ([\d.]+)", capsys.readouterr().out)
    assert float(ncc.group(1)) > 0.99                            # after the affine fit
    field = np.asarray(nib.load(str(tmp_path / "out" / "field.nii.gz")).dataobj)      # [40, 40, 2]: the map is x + 6
    assert np.abs(field[..., 0] - 6).mean() < 0.5 and np.abs(field[..., 1]).mean() < 0.5
    warped = np.asarray(nib.load(str(tmp_path / "out" / "warped.nii.gz")).dataobj)
    diff = np.abs(warped - scene[20:60, 20:60])                  # range ~ 230
    assert diff.mean() < 3 and diff[-6:].mean() < 3              # the last 6 rows: moving content beyond the fixed grid


def test_register_pairs_csv_registers_every_row(reg_run, pair, tmp_path, capsys):
    """--pairs CSV: every row checked before anything is written (a bad row: one line naming it,
    exit 2, nothing written); then each row's files as NNNN_*, and results.csv with its figures;
    a second run with fewer rows leaves none of the first run's rows behind."""
    import csv
    row = f"{pair['moving']},{pair['fixed']},{pair['moving_labels']},{pair['fixed_labels']}"
    (tmp_path / "pairs.csv").write_text(f"moving,fixed,moving_labels,fixed_labels\n{row}\n"
                                        f"{pair['fixed']},{pair['moving']},,\n")
    out = tmp_path / "out"
    (tmp_path / "bad.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n{pair['moving']},nope.nii.gz\n")
    fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "bad.csv"), "--out", str(out)], "bad.csv, row 2 (line 3):")
    assert not out.exists()
    fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--moving", str(pair["moving"]),
                   "--out", str(out)], "leave out --moving")
    fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--fixed-labels",
                   str(pair["fixed_labels"]), "--out", str(out)], "give it")
    fails(capsys, ["register", str(reg_run), "--fixed", str(pair["fixed"]), "--out", str(out)], "give --moving and --fixed")
    assert main(["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "2", "--out", str(out)]) == 0
    assert "registered 2 pairs" in capsys.readouterr().out
    for k in ("0000", "0001"):
        assert {f"{k}_{f}" for f in ("warped.nii.gz", "field_itk.nii.gz", "jacobian.nii.gz", "preview.png")} <= \
            {p.name for p in out.iterdir()}
    assert (out / "0000_warped_labels.nii.gz").exists() and not (out / "0001_warped_labels.nii.gz").exists()
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["row"] for r in rows] == ["1", "2"] and rows[1]["dice_after"] == ""
    assert 0 < float(rows[0]["dice_after"]) <= 1 and float(rows[0]["steps"]) == 2
    single = tmp_path / "single"                       # row 1 again, alone: the same registration
    assert main(args(reg_run, pair, single, "--steps", "2")) == 0
    assert np.array_equal(np.asarray(nib.load(str(single / "warped.nii.gz")).dataobj),
                          np.asarray(nib.load(str(out / "0000_warped.nii.gz")).dataobj))
    (tmp_path / "atlas.csv").write_text(f"moving,moving_labels\n{pair['moving']},{pair['moving_labels']}\n")
    assert main(["register", str(reg_run), "--pairs", str(tmp_path / "atlas.csv"), "--fixed", str(pair["fixed"]),
                 "--fixed-labels", str(pair["fixed_labels"]), "--steps", "2", "--out", str(tmp_path / "atlas")]) == 0
    again = list(csv.DictReader(open(tmp_path / "atlas" / "results.csv")))      # one fixed image (an atlas) for all
    assert again[0]["dice_after"] == rows[0]["dice_after"] and again[0]["fixed"] == str(pair["fixed"])
    (tmp_path / "one.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n")
    assert main(["register", str(reg_run), "--pairs", str(tmp_path / "one.csv"), "--steps", "1", "--out", str(out)]) == 0
    assert not any(p.name.startswith("0001_") for p in out.iterdir())
    # inputs inside --out under names the command writes or clears there: refused, nothing deleted
    import shutil
    shutil.copy(pair["moving"], out / "0000_warped.nii.gz")
    (out / "subjects.csv").write_text(f"moving,fixed\n0000_warped.nii.gz,{pair['fixed']}\n")
    fails(capsys, ["register", str(reg_run), "--pairs", str(out / "subjects.csv"), "--out", str(out)],
          "lies in --out under a name this command writes there")
    assert (out / "0000_warped.nii.gz").read_bytes() == Path(pair["moving"]).read_bytes()
    shutil.copy(pair["moving"], out / "2019_subject07.nii.gz")        # a user's file, named by year: not ours
    (out / "subjects.csv").write_text(f"moving,fixed\n2019_subject07.nii.gz,{pair['fixed']}\n")
    assert main(["register", str(reg_run), "--pairs", str(out / "subjects.csv"), "--steps", "1", "--out", str(out)]) == 0
    assert (out / "2019_subject07.nii.gz").read_bytes() == Path(pair["moving"]).read_bytes()
    shutil.copy(pair["moving"], tmp_path / "warped.nii.gz")
    fails(capsys, ["register", str(reg_run), "--moving", str(tmp_path / "warped.nii.gz"), "--fixed", str(pair["fixed"]),
                   "--out", str(tmp_path)], "lies in --out")
    # an error about --fixed / --fixed-labels names the flag; a row without a fixed image is named
    (tmp_path / "m.csv").write_text(f"moving\n{pair['moving']}\n")
    fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "m.csv"), "--fixed", str(pair["fixed"]),
                   "--fixed-labels", str(pair["fixed_labels"]), "--out", str(tmp_path / "x")],
          "--fixed-labels goes with moving_labels column")
    (tmp_path / "gap.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n{pair['moving']},\n")
    fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "gap.csv"), "--out", str(tmp_path / "x")],
          "gap.csv, row 2 (line 3): every row needs moving and fixed")
    assert "[,fixed," not in fails(capsys, ["register", str(reg_run), "--pairs", str(tmp_path / "m.csv"), "--out",
                                            str(tmp_path / "x")], "needs a header with columns moving,fixed")


def _itk_voxels(path, field_affine, target_affine) -> torch.Tensor:
    """A 2D ITK displacement field (LPS mm) read back as our voxel field ``[1, 2, H, W]``: voxel
    ``y`` of the field's grid goes to voxel ``y + v(y)`` of the target grid."""
    d = np.asarray(nib.load(str(path)).dataobj)[:, :, 0, 0] * [-1, -1]             # LPS -> RAS mm
    y = np.stack(np.meshgrid(*[np.arange(k) for k in d.shape[:2]], indexing="ij"), -1).astype(float)
    world = y @ field_affine[:2, :2].T + field_affine[:2, 3] + d
    target = np.linalg.solve(target_affine[:2, :2], (world - target_affine[:2, 3])[..., None])[..., 0]
    return torch.from_numpy(np.moveaxis(target - y, -1, 0).astype(np.float32))[None]


def test_register_inverse_maps_the_fixed_labels_onto_the_moving_image(reg_run, pair, tmp_path, capsys):
    """--inverse: an ITK field that undoes the forward one (read back from LPS mm: v + u(y + v)
    is ~0), and --fixed-labels alone (an atlas's) written on the moving image's own grid, here
    another one than the fixed image's."""
    from rl_i2it.ops.warp import warp
    from rl_i2it.tasks.registration import warp_labels
    no_moving = [a for a in args(reg_run, pair, tmp_path / "inv") if a not in ("--moving-labels", str(pair["moving_labels"]))]
    assert main(no_moving + ["--steps", "20", "--inverse"]) == 0
    printed = capsys.readouterr().out
    assert "inverse within 0.1 model voxel at" in printed and "fixed_labels_on_moving.nii.gz" in printed
    u = torch.from_numpy(np.moveaxis(np.asarray(nib.load(str(tmp_path / "inv" / "field.nii.gz")).dataobj), -1, 0))[None]
    itk = nib.load(str(tmp_path / "inv" / "inverse_field_itk.nii.gz"))
    assert itk.shape == (40, 40, 1, 1, 2) and itk.header.get_intent()[0] == "vector" and np.allclose(itk.affine, AFFINE)
    v = _itk_voxels(tmp_path / "inv" / "inverse_field_itk.nii.gz", AFFINE, AFFINE)
    residual = (v + warp(u, v, padding="border")).norm(dim=1)[0, 2:-2, 2:-2]
    naive = (-u + warp(u, -u, padding="border")).norm(dim=1)[0, 2:-2, 2:-2]     # -u, a first guess
    assert u.abs().max() > 0.3 and residual.max() < 0.05 and residual.max() < 0.25 * naive.max()   # 0.011, 0.11 measured
    fixed_labels = torch.from_numpy(np.asarray(nib.load(str(pair["fixed_labels"])).dataobj).astype(np.int64))
    on_moving = nib.load(str(tmp_path / "inv" / "fixed_labels_on_moving.nii.gz"))
    assert np.allclose(on_moving.affine, AFFINE) and on_moving.shape == (40, 40)
    same = np.asarray(on_moving.dataobj) == warp_labels(fixed_labels[None], v)[0].numpy()
    assert same.mean() > 0.99                                    # nearest either way: ties may fall apart

    other = AFFINE.copy()                     # the moving image on another grid: the labels on that grid
    other[0, 3] += 4.5
    other[1, 1] *= 1.25
    moving = np.asarray(nib.load(str(pair["moving"])).dataobj)[:, :36]
    write_nifti(pair["moving"], moving, other)
    assert main(no_moving + ["--steps", "3", "--inverse", "--out", str(tmp_path / "inv2")]) == 0
    on_moving = nib.load(str(tmp_path / "inv2" / "fixed_labels_on_moving.nii.gz"))
    assert on_moving.shape == (40, 36) and np.allclose(on_moving.affine, other)
    # where they land, computed here: moving voxel -> world -> fixed voxel y -> y + v(y) -> its label
    v = _itk_voxels(tmp_path / "inv2" / "inverse_field_itk.nii.gz", AFFINE, AFFINE)
    z = np.stack(np.meshgrid(np.arange(40), np.arange(36), indexing="ij"), -1).astype(float)
    y = np.linalg.solve(AFFINE[:2, :2], (z @ other[:2, :2].T + other[:2, 3] - AFFINE[:2, 3])[..., None])[..., 0]
    grid = torch.from_numpy(y / 39 * 2 - 1).float().flip(-1)[None]
    vy = torch.nn.functional.grid_sample(v, grid, align_corners=True)[0].permute(1, 2, 0).numpy()
    src = np.rint(y + vy).astype(int)
    inside = ((src >= 0) & (src <= 39)).all(-1)
    expected = np.zeros((40, 36), np.int64)
    expected[inside] = fixed_labels.numpy()[src[inside][:, 0], src[inside][:, 1]]
    ours = np.asarray(on_moving.dataobj)
    assert ours.any() and (ours == expected).mean() > 0.99                   # rounding ties apart

    rotated = np.array([[0, -2.0, 0, 30], [1.2, 0, 0, -7], [0, 0, 1, 3], [0, 0, 0, 1]])   # --by-voxel, another header
    write_nifti(pair["moving"], np.asarray(nib.load(str(pair["fixed"])).dataobj)[::-1].copy(), rotated)
    assert main(no_moving + ["--steps", "20", "--inverse", "--by-voxel", "--out", str(tmp_path / "inv3")]) == 0
    u = torch.from_numpy(np.moveaxis(np.asarray(nib.load(str(tmp_path / "inv3" / "field.nii.gz")).dataobj), -1, 0))[None]
    assert np.allclose(nib.load(str(tmp_path / "inv3" / "inverse_field_itk.nii.gz")).affine, rotated)
    v = _itk_voxels(tmp_path / "inv3" / "inverse_field_itk.nii.gz", rotated, AFFINE)     # moving voxel -> fixed voxel
    assert u.abs().max() > 0.3 and (v + warp(u, v, padding="border")).norm(dim=1)[0, 2:-2, 2:-2].max() < 0.05
    on_moving = nib.load(str(tmp_path / "inv3" / "fixed_labels_on_moving.nii.gz"))
    assert np.allclose(on_moving.affine, rotated)
    assert (np.asarray(on_moving.dataobj) == warp_labels(fixed_labels[None], v)[0].numpy()).mean() > 0.99


def test_register_inverse_in_ants(reg_run, pair, tmp_path):
    """With antspyx installed: ANTs takes the fixed labels through ``inverse_field_itk.nii.gz`` onto
    the moving image's own (other) grid as ``fixed_labels_on_moving.nii.gz`` has them."""
    import subprocess
    import sys
    from rl_i2it.baselines import classical
    if not classical.available("syn"):
        pytest.skip(classical.missing_line("syn"))
    other = AFFINE.copy()
    other[0, 3] += 4.5
    other[1, 1] *= 1.25
    write_nifti(pair["moving"], np.asarray(nib.load(str(pair["moving"])).dataobj)[:, :36], other)
    out = tmp_path / "out"
    assert main(["register", str(reg_run), "--moving", str(pair["moving"]), "--fixed", str(pair["fixed"]),
                 "--fixed-labels", str(pair["fixed_labels"]), "--steps", "20", "--inverse", "--out", str(out)]) == 0
    code = ("import ants, numpy as np, sys; m, lab = ants.image_read(sys.argv[1]), ants.image_read(sys.argv[2]); "
            "np.save('ants.npy', ants.apply_transforms(m, lab, ['inverse_field_itk.nii.gz'], "
            "interpolator='nearestNeighbor').numpy())")
    subprocess.run([sys.executable, "-c", code, str(pair["moving"]), str(pair["fixed_labels"])], cwd=out, check=True,
                   timeout=120)
    ants_labels, ours = np.load(out / "ants.npy"), np.asarray(nib.load(str(out / "fixed_labels_on_moving.nii.gz")).dataobj)
    assert ants_labels.shape == ours.shape == (40, 36) and ours.any()
    assert (ants_labels == ours).mean() > 0.995   # 1.0 measured; 0.95 through the forward field instead


def test_register_says_when_itk_may_read_the_header_otherwise(reg_run, pair, tmp_path, capsys):
    sheared = AFFINE.copy()
    sheared[0, 1] = 0.3
    for key in pair:
        write_nifti(pair[key], np.asarray(nib.load(str(pair[key])).dataobj), sheared)
    assert main(args(reg_run, pair, tmp_path / "out", "--steps", "1")) == 0
    assert "sheared affine or a qform unlike its sform" in capsys.readouterr().err


def test_register_adaptive_runs_up_to_30_steps_or_its_steps(reg_run, pair, tmp_path, capsys, monkeypatch):
    """--adaptive stops after at most 30 steps, or after at most --steps when given."""
    import rl_i2it.tasks.registration as reg
    taken = []
    real = reg.register

    def spy(task, policy, f, m, steps=10, **kw):
        taken.append(steps)
        return real(task, policy, f, m, steps, **kw)
    monkeypatch.setattr(reg, "register", spy)
    assert main(args(reg_run, pair, tmp_path / "a", "--adaptive")) == 0
    assert main(args(reg_run, pair, tmp_path / "b", "--adaptive", "--steps", "5")) == 0
    assert main(args(reg_run, pair, tmp_path / "c")) == 0
    assert taken == [30, 5, 10]


def test_register_refuses_bad_input_before_writing(reg_run, run_dir, pair, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "never"
    bad = dict(pair)
    ramp = lambda *shape: np.arange(np.prod(shape), dtype=np.float32).reshape(shape)     # noqa: E731
    write_nifti(tmp_path / "vol.nii.gz", ramp(8, 8, 8), AFFINE)
    fails(capsys, args(reg_run, {**pair, "moving": tmp_path / "vol.nii.gz"}, out), "registers 2D images")
    write_nifti(tmp_path / "small.nii.gz", ramp(40, 30), AFFINE)
    fails(capsys, args(reg_run, {**pair, "moving": tmp_path / "small.nii.gz"}, out), "--moving-labels (40, 40) differ")
    small = {**pair, "moving": tmp_path / "small.nii.gz", "moving_labels": tmp_path / "small_labels.nii.gz"}
    write_nifti(small["moving_labels"], np.ones((40, 30), np.int16), AFFINE)
    fails(capsys, args(reg_run, small, out, "--by-voxel"), "voxel to voxel needs one grid")
    far = AFFINE.copy()
    far[1, 3] += 1000
    write_nifti(small["moving"], ramp(40, 30), far)
    write_nifti(small["moving_labels"], np.ones((40, 30), np.int16), far)
    fails(capsys, args(reg_run, small, out), "do not overlap")
    write_nifti(tmp_path / "empty.nii.gz", np.zeros((40, 40), np.int16), AFFINE)
    fails(capsys, args(reg_run, {**pair, "moving_labels": tmp_path / "empty.nii.gz"}, out), "empty")
    write_nifti(tmp_path / "flat.nii.gz", np.ones((40, 40), np.float32), AFFINE)
    fails(capsys, args(reg_run, {**pair, "moving": tmp_path / "flat.nii.gz"}, out), "a constant image")
    nan = np.ones((40, 40), np.float32)
    nan[3, 4] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan, AFFINE)
    fails(capsys, args(reg_run, {**bad, "fixed": tmp_path / "nan.nii.gz"}, out), "NaN")
    fails(capsys, args(run_dir, pair, out), "registration model")
    fails(capsys, args(reg_run, pair, out, "--steps", "0"), "--steps")
    assert not out.exists()


def test_register_pairs_stopped_halfway_keeps_the_finished_rows_figures(reg_run, pair, tmp_path, monkeypatch):
    """results.csv is rewritten after each row: a run stopped (Ctrl-C, killed) at row 2 keeps row 1's figures."""
    import csv

    from rl_i2it import cli
    calls, real = [], cli._register_pair

    def stop_at_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(cli, "_register_pair", stop_at_second)
    (tmp_path / "pairs.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n{pair['fixed']},{pair['moving']}\n")
    out = tmp_path / "out"
    assert main(["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1", "--out", str(out)]) == 130
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["row"] for r in rows] == ["1"] and float(rows[0]["ncc_after"]) > -1
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("0000_")) == ["results.csv"]


def test_register_out_of_memory_leaves_the_last_runs_files(reg_run, pair, tmp_path, capsys, monkeypatch):
    """A volume too large for memory fails in the registration, before anything is written: --out
    keeps every file of the last run (its step files and label outputs too)."""
    import rl_i2it.tasks.registration as registration
    out = tmp_path / "out"
    (tmp_path / "pairs.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n")
    assert main(args(reg_run, pair, out, "--steps", "2", "--every-step", "--inverse")) == 0
    assert main(["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1",
                 "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"step_01.nii.gz", "warped_labels.nii.gz", "0000_warped.nii.gz", "results.csv"} <= set(before)

    def out_of_memory(*a, **k):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 40 GB")
    monkeypatch.setattr(registration, "register", out_of_memory)
    capsys.readouterr()
    for argv in (args(reg_run, pair, out, "--steps", "1"),
                 ["register", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--out", str(out)]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("rl-i2it: error: out of memory")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_eval_scores_a_registration_run_on_users_pairs(reg_run, pair, tmp_path, capsys):
    import json
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels,fixed_labels\n"
                                        f"{pair['moving']},{pair['fixed']},{pair['moving_labels']},{pair['fixed_labels']}\n")
    out = tmp_path / "ev"
    assert main(["eval", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1,2", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"identity", "t1", "t2", "adaptive"} and res["n"] == 1
    assert 0 < res["methods"]["identity"]["dice"] < 1
    assert res["methods"]["t2"]["params"] == res["methods"]["adaptive"]["params"] > 0
    assert "| t2 |" in capsys.readouterr().out
    far = AFFINE.copy()                             # headers that place the moving image elsewhere
    far[1, 3] += 1000
    for key in ("moving", "moving_labels"):
        write_nifti(pair[key], np.asarray(nib.load(str(pair[key])).dataobj), far)
    fails(capsys, ["eval", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "e2")],
          "do not overlap")
    assert main(["eval", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1,2", "--by-voxel",
                 "--out", str(tmp_path / "e2")]) == 0                      # voxel to voxel: the table above again
    again = json.loads((tmp_path / "e2" / "results.json").read_text())
    assert again["methods"]["identity"] == res["methods"]["identity"]
    fails(capsys, ["eval", str(reg_run), "--pairs", "brain2d", "--by-voxel"], "for your own pairs")


def test_eval_scores_baseline_runs_beside_it(reg_run, pair, tmp_path, capsys):
    """--onestep (scored at T=1) and --norl (at T=10) join the table on the same pairs; with the
    mean plan the same run as --onestep gives exactly its own T=1 row (and notes say it is no
    one-step network nor w/o RL, which the table's names would claim)."""
    import json
    (tmp_path / "pairs.csv").write_text("moving,fixed,moving_labels,fixed_labels\n"
                                        f"{pair['moving']},{pair['fixed']},{pair['moving_labels']},{pair['fixed_labels']}\n")
    out = tmp_path / "ev"
    assert main(["eval", str(reg_run), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "1,10",
                 "--onestep", str(reg_run), "--norl", str(reg_run), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["methods"]
    assert res["split"] == "test" and {"onestep", "norl", "t1", "t10"} <= set(m)
    assert m["onestep"]["dice"] == m["t1"]["dice"] and m["norl"]["dice"] == m["t10"]["dice"]
    err = capsys.readouterr().err
    assert "--onestep" in err and "was trained with RL and with 2-step episodes: the table names it the one-step" in err
    assert "--norl" in err and "was trained with RL: the table names it w/o RL" in err


def test_eval_takes_a_named_pair_set_at_the_split(reg_run, reg_pairs, tmp_path, monkeypatch, capsys):
    """--pairs brain2d-inter --split valid scores the run on that set's valid pairs (the loader is
    stubbed: the real set needs the MNI152 and ch2 files)."""
    import json
    import rl_i2it.data.pairs as pairs_mod
    asked, changed = [], []

    def fake_load(name, split="train", n=256, size=128, by_voxel=False):
        asked.append((name, split))
        from dataclasses import replace                          # (the run's own pairs: checked unchanged)
        ps = replace(reg_pairs["train" if split == "train" else "test"], name=name)
        return replace(ps, fixed=ps.fixed.flip(-1)) if split == "train" and changed else ps
    monkeypatch.setattr(pairs_mod, "load_pairs", fake_load)
    out = tmp_path / "ev"
    assert main(["eval", str(reg_run), "--pairs", "brain2d-inter", "--split", "valid", "--steps", "1",
                 "--out", str(out)]) == 0
    assert asked == [("brain2d-inter", "valid"), ("brain2d", "train")]
    res = json.loads((out / "results.json").read_text())
    assert res["pairs"] == "brain2d-inter" and res["split"] == "valid" and res["n"] == len(reg_pairs["test"])
    import shutil
    import torch
    from rl_i2it.core import checkpoint as ckpt
    old = tmp_path / "old"                 # a brain run of a version before the split by height: no fingerprint
    shutil.copytree(reg_run, old)
    saved = ckpt.load(old / "policy.pt")
    saved.pop("data"), saved.pop("trained_on")
    torch.save(saved, old / "policy.pt")
    for argv in (["--pairs", "brain2d-inter"], ["--onestep", str(old)]):
        assert main(["eval", str(reg_run if "--onestep" in argv else old), *argv, "--steps", "1",
                     "--out", str(tmp_path / "e")]) == 2
        assert "learnt from data not known to be brain2d's pairs of today" in capsys.readouterr().err
    changed.append(True)                                             # its training pairs changed since
    assert main(["eval", str(reg_run), "--pairs", "brain2d-inter", "--out", str(tmp_path / "e")]) == 2
    assert "was trained on other data" in capsys.readouterr().err


def test_eval_refuses_pairs_and_baselines_that_do_not_fit(reg_run, run_dir, pair, tmp_path, capsys):  # noqa: F811
    """A 3D pair set, 3D volumes or a run of another task beside a 2D registration run: one line,
    before any work (the named set is not even built)."""
    out = tmp_path / "ev"
    fails(capsys, ["eval", str(reg_run), "--pairs", "liver3d", "--out", str(out)], "3D set")
    fails(capsys, ["eval", str(reg_run), "--onestep", str(run_dir), "--out", str(out)], "is a digits run")
    fails(capsys, ["eval", str(reg_run), "--style", str(pair["fixed"]), "--out", str(out)], "--style is for style runs")
    fails(capsys, ["eval", str(run_dir), "--affine", "--out", str(out)], "--affine is for registration runs")
    fails(capsys, ["eval", str(reg_run), "--n-moving", "5", "--out", str(out)], "--n-moving is for digits runs")
    fails(capsys, ["eval", str(reg_run), "--transform", "inner", "--out", str(out)], "--transform is for digits runs")
    fails(capsys, ["eval", str(reg_run), "--no-features", "--out", str(out)], "--no-features is for inpainting")
    (tmp_path / "nolabels.csv").write_text(f"moving,fixed\n{pair['moving']},{pair['fixed']}\n")
    fails(capsys, ["eval", str(reg_run), "--pairs", str(tmp_path / "nolabels.csv"), "--out", str(out)],
          f"--pairs {tmp_path / 'nolabels.csv'}: row(s) 1 have no labels")       # no split column: its rows
    assert not out.exists()


def test_eval_of_a_run_trained_on_users_pairs_says_when_they_are_its_training_pairs(pair, tmp_path, capsys):
    """A run trained on ``manifest:CSV`` is scored by ``eval`` on the CSV's test rows when it has a
    split column; without one the scores are on its training pairs, and a note says so. A run
    trained voxel to voxel is scored voxel to voxel."""
    import json
    row = f"{pair['moving']},{pair['fixed']},{pair['moving_labels']},{pair['fixed_labels']}"
    (tmp_path / "all.csv").write_text(f"moving,fixed,moving_labels,fixed_labels\n{row}\n{row}\n")
    def train(csv, run):
        cfg = load_config(None, {"task": "registration", "seed": 0,
                                 "task_options": {**REG_SMALL, "pairs": f"manifest:{csv}", "by_voxel": True},
                                 "train": {"n_envs": 2, "horizon": 2, "learning_starts": 2, "steps": 2, "replay_size": 8},
                                 "sac": {"batch_size": 2}})
        Trainer(cfg, run, verbose=False).train()
    train(tmp_path / "all.csv", tmp_path / "first")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "first"), "--steps", "1", "--out", str(tmp_path / "e1")]) == 0
    assert "these scores are on its training pairs" in capsys.readouterr().err
    assert json.loads((tmp_path / "e1" / "results.json").read_text())["n"] == 2
    (tmp_path / "all.csv").write_text(f"moving,fixed,moving_labels,fixed_labels,split\n{row},train\n{row},test\n"
                                      f"{row},test\n{row},valid\n")
    fails(capsys, ["eval", str(tmp_path / "first"), "--steps", "1", "--out", str(tmp_path / "e0")],
          "was trained on other data")          # a split column added since: its test rows were training rows
    train(tmp_path / "all.csv", tmp_path / "run")
    capsys.readouterr()
    far = AFFINE.copy()                           # headers that would not overlap: only voxel to voxel works
    far[1, 3] += 1000
    for key in ("moving", "moving_labels"):
        write_nifti(pair[key], np.asarray(nib.load(str(pair[key])).dataobj), far)
    assert main(["eval", str(tmp_path / "run"), "--steps", "1", "--out", str(tmp_path / "e2")]) == 0
    assert "training pairs" not in capsys.readouterr().err
    assert json.loads((tmp_path / "e2" / "results.json").read_text())["n"] == 2
    assert main(["eval", str(tmp_path / "run"), "--split", "valid", "--steps", "1", "--out", str(tmp_path / "e3")]) == 0
    assert json.loads((tmp_path / "e3" / "results.json").read_text())["n"] == 1
    (tmp_path / "all.csv").write_text(f"moving,fixed,moving_labels,fixed_labels,split\n{row},train\n{row},test\n"
                                      f"{pair['moving']},{pair['fixed']},,,valid\n")
    fails(capsys, ["eval", str(tmp_path / "run"), "--split", "valid", "--out", str(tmp_path / "e4")],
          f"the run's pairs (manifest:{tmp_path / 'all.csv'}): pair(s) 1 of its valid split have no labels")  # "--pairs None"
