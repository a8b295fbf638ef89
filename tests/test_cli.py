"""The command line as a user meets it: outputs, and one clear line + exit 2 for bad input."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from rl_i2it.cli import main
from rl_i2it.config import PRESETS as DEFAULT_CONFIGS
from rl_i2it.config import load_config
from rl_i2it.core.trainer import Trainer
from rl_i2it.data.cache import writable_dir
from rl_i2it.errors import UserError
from rl_i2it.tasks.digits import DigitsTask
from conftest import SMALL


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("run")
    data = out / "digits.npz"
    np.savez(data, train_x=digits.train_x, train_y=digits.train_y, test_x=digits.test_x, test_y=digits.test_y)
    opts = dict(SMALL, transform="cross", source=str(data))
    cfg = load_config(None, {"task_options": opts, "train": {"n_envs": 8, "horizon": 2, "learning_starts": 8,
                                                             "steps": 4, "replay_size": 64}, "sac": {"batch_size": 8}})
    Trainer(cfg, out / "r", task=DigitsTask(opts, data=digits), verbose=False).train()
    return out / "r"


def digit_png(path, digits, i, size=28):
    img = Image.fromarray(digits.test_x[i])
    if size != 28:
        img = img.resize((size, size))
    img.save(path)
    return path


def fails(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rl-i2it: error:") and match in err[0], err
    return err[0]


def test_every_step_is_offered_where_it_writes_something(capsys):
    helps = {}
    for command in ("stylize", "translate", "inpaint"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    assert "--every-step also write each step's image, step_TT.png" in helps["stylize"]
    assert "--every-step also write each step's image" in helps["translate"]
    assert "--every-step also write each step's image, step_TT.png" in helps["inpaint"]   # (was: always)


def test_translate_one_pair_every_step(tmp_path, run_dir, digits, capsys):
    m, f = digit_png(tmp_path / "m.png", digits, 0), digit_png(tmp_path / "f.png", digits, 1)
    out = tmp_path / "out"
    assert main(["translate", str(run_dir / "policy.pt"), "--moving", str(m), "--fixed", str(f),
                 "--steps", "3", "--every-step", "--out", str(out)]) == 0
    assert {"warped.png", "field.npy", "grid.png", "results.csv", "step_01.png", "step_03.png"} <= {p.name for p in out.iterdir()}
    assert np.load(out / "field.npy").shape == (2, 28, 28)
    assert Image.open(out / "warped.png").size == (28, 28)
    said = capsys.readouterr().out
    from rl_i2it.ops.metrics import binary_dice
    from rl_i2it.data.images import read_image
    start = float(binary_dice(read_image(m)[None, :1], read_image(f)[None, :1])[0])
    assert f"mean Dice {start:.3f} -> " in said                      # where the pair started, then where it ended
    mine = [out / "step_1_of_my_tutorial.png", out / "step_2023-05-01.png", out / "0001_step_9.png"]
    for p in mine:                                       # the user's files under step-like names
        p.write_bytes(b"mine")
    (out / "step_104.png").write_bytes(b"old")          # a 104-step run's (3 digits): cleared
    assert main(["translate", str(run_dir), "--moving", str(m), "--fixed", str(f), "--steps", "2", "--every-step",
                 "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"step_01.png", "step_02.png"} <= names and not {"step_03.png", "step_104.png"} & names
    assert all(p.read_bytes() == b"mine" for p in mine)


def test_a_digit_drawn_dark_on_a_light_page_is_read_as_mnist_draws_it(tmp_path, run_dir, digits, capsys):
    m, f = digit_png(tmp_path / "m.png", digits, 0), digit_png(tmp_path / "f.png", digits, 1)
    Image.fromarray(255 - digits.test_x[0]).save(tmp_path / "paper.png")      # black ink on white paper
    for moving, out in ((m, "plain"), (tmp_path / "paper.png", "paper")):
        assert main(["translate", str(run_dir), "--moving", str(moving), "--fixed", str(f), "--steps", "2",
                     "--out", str(tmp_path / out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("inverted") == 1 and "paper.png: a dark digit on a light background, inverted" in printed
    assert np.allclose(np.load(tmp_path / "plain" / "field.npy"), np.load(tmp_path / "paper" / "field.npy"), atol=1e-5)


def test_translate_pairs_csv(tmp_path, run_dir, digits, capsys):
    for i in range(3):
        digit_png(tmp_path / f"d{i}.png", digits, i)
    with open(tmp_path / "pairs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["moving", "fixed"])
        w.writerows([["d0.png", "d1.png"], ["d1.png", "d2.png"], ["d2.png", str(tmp_path / "d0.png")]])
    out = tmp_path / "batch"
    assert main(["translate", str(run_dir), "--pairs", str(tmp_path / "pairs.csv"), "--steps", "2", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"0000_warped.png", "0002_field.npy", "results.csv"} <= names and "0003_warped.png" not in names
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and all(0 <= float(r["dice"]) <= 1 and 0 <= float(r["dice_before"]) <= 1 for r in rows)
    (out / "0002_notes.txt").write_text("mine")
    with open(tmp_path / "one.csv", "w", newline="", encoding="utf-8-sig") as fh:   # a BOM, as spreadsheets write
        fh.write("Moving, Fixed\nd0.png,d1.png\n")
    assert main(["translate", str(run_dir), "--pairs", str(tmp_path / "one.csv"), "--steps", "1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0000_field.npy", "0000_warped.png", "0002_notes.txt",
                                                     "grid.png", "results.csv"]
    (tmp_path / "bad.csv").write_text("moving,fixed\nd0.png,d1.png\nd1.png,missing.png\n")
    fails(capsys, ["translate", str(run_dir), "--pairs", str(tmp_path / "bad.csv"), "--out", str(out)],
          "bad.csv, row 2 (line 3): image not found")
    (tmp_path / "nohead.csv").write_text("a,b\nd0.png,d1.png\n")
    assert "labels" not in fails(capsys, ["translate", str(run_dir), "--pairs", str(tmp_path / "nohead.csv"),
                                          "--out", str(out)], "needs a header with columns moving,fixed")


def test_bad_inputs_one_line_exit_2_nothing_overwritten(tmp_path, run_dir, digits, capsys):
    m, f = digit_png(tmp_path / "m.png", digits, 0), digit_png(tmp_path / "f.png", digits, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "warped.png").write_bytes(b"precious")
    ck = str(run_dir / "policy.pt")
    tr = lambda *a: ["translate", ck, "--moving", str(m), "--fixed", str(f), "--out", str(out), *a]
    fails(capsys, ["translate", ck, "--moving", str(tmp_path / "nope.png"), "--fixed", str(f), "--out", str(out)], "not found")
    (tmp_path / "text.png").write_text("not an image")
    fails(capsys, ["translate", ck, "--moving", str(tmp_path / "text.png"), "--fixed", str(f), "--out", str(out)], "not a readable image")
    big = digit_png(tmp_path / "big.png", digits, 2, size=32)
    fails(capsys, ["translate", ck, "--moving", str(big), "--fixed", str(f), "--out", str(out)], "28x28")
    fails(capsys, tr("--steps", "0"), "--steps")
    fails(capsys, tr("--steps", "1000000"), "--steps must be from 1 to 200")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage" * 10)
    fails(capsys, ["translate", str(tmp_path / "corrupt.pt"), "--moving", str(m), "--fixed", str(f), "--out", str(out)], "cannot read checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    fails(capsys, ["translate", str(tmp_path / "foreign.pt"), "--moving", str(m), "--fixed", str(f), "--out", str(out)], "not an rl-i2it checkpoint")
    saved = torch.load(run_dir / "policy.pt", weights_only=True)
    torch.save({k: v for k, v in saved.items() if k != "config"}, tmp_path / "noconfig.pt")
    fails(capsys, ["translate", str(tmp_path / "noconfig.pt"), "--moving", str(m), "--fixed", str(f), "--out", str(out)],
          "holds no config")
    (tmp_path / "afile").write_text("")
    fails(capsys, ["translate", ck, "--moving", str(m), "--fixed", str(f), "--out", str(tmp_path / "afile" / "sub")], "cannot write")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    fails(capsys, ["translate", ck, "--pairs", str(tmp_path / "bad.csv"), "--out", str(out)], "moving,fixed")
    assert (out / "warped.png").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["warped.png"]
    out2 = tmp_path / "out2"                               # inputs in --out under names it clears or writes
    out2.mkdir()
    step, warped = digit_png(out2 / "step_01.png", digits, 3), digit_png(out2 / "warped.png", digits, 4)
    kept = {p: p.read_bytes() for p in (step, warped)}
    tr2 = lambda mv, fx: ["translate", ck, "--moving", str(mv), "--fixed", str(fx), "--out", str(out2), "--every-step"]
    fails(capsys, tr2(step, f), "step_01.png lies in --out")
    fails(capsys, tr2(m, warped), "warped.png lies in --out")
    (out2 / "results.csv").write_text(f"moving,fixed\n{m},{f}\n")          # the CSV itself, under a written name
    fails(capsys, ["translate", ck, "--pairs", str(out2 / "results.csv"), "--out", str(out2)], "results.csv lies in --out")
    assert (out2 / "results.csv").read_text().startswith("moving,fixed")
    assert {p: p.read_bytes() for p in (step, warped)} == kept


def test_bad_training_requests(tmp_path, run_dir, capsys):
    fails(capsys, ["train", "nosuchtask", "--steps", "1", "--out", str(tmp_path / "a")], "unknown task")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "sac.gamma=abc", "--out", str(tmp_path / "a")], "sac.gamma")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "sac.gamma=2", "--out", str(tmp_path / "a")], "gamma")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "task_options.transform=spin", "--out", str(tmp_path / "a")], "transform")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "sac.nosuch=1", "--out", str(tmp_path / "a")], "unknown config key sac.nosuch (known:")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "train.log_every=0", "--out", str(tmp_path / "a")],
          "train.log_every must be >= 1")
    for key, value, said in (("sac.aux_weight", "-1", "sac.rl_weight and sac.aux_weight must be >= 0"),
                             ("sac.entropy_steps", "-3", "sac.entropy_steps must be >= 0"),
                             ("task_options.reward_scale", "nan", "task_options.reward_scale must be a finite number"),
                             ("task_options.reward_scale", "-10", "task_options.reward_scale must be > 0")):
        fails(capsys, ["train", "digits", "--steps", "1", "--set", f"{key}={value}", "--out", str(tmp_path / "a")], said)
    for key, value, said in (("task_options.lr_disc", "0", "task_options.lr_disc must be > 0"),
                             ("task_options.disc_limit", "nan", "task_options.disc_limit must be a finite number")):
        fails(capsys, ["train", "translation", "--steps", "1", "--set", f"{key}={value}", "--out", str(tmp_path / "a")],
              said)
    for widths in ("8,x", "", "8,16.5"):                       # a list entry that is not an int
        fails(capsys, ["train", "digits", "--steps", "1", "--set", f"task_options.widths={widths}",
                       "--out", str(tmp_path / "a")], "task_options.widths")
    fails(capsys, ["train", "digits", "--steps", "1", "--config", str(tmp_path / "none.toml")], "config file not found")
    fails(capsys, ["train", "digits", "--steps", "1", "--device", "tpu"], "device")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "task_options.source=" + str(tmp_path / "x.npz"),
                   "--out", str(tmp_path / "b")], "not found")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "task=style", "--out", str(tmp_path / "a")],
          "the command names the task")
    fails(capsys, ["train", "inpainting", "--steps", "1", "--config", str(DEFAULT_CONFIGS / "translation.toml"),
                   "--out", str(tmp_path / "a")], "train translation --config")     # another task's preset
    fails(capsys, ["data", "fetch", "imagenet"], "unknown dataset")
    fails(capsys, ["train", "style", "--steps", "1", "--out", str(run_dir)], "holds a digits run: train style into another")
    fails(capsys, ["eval", str(tmp_path)], "not a run directory")
    fails(capsys, ["translate", str(run_dir), "--moving", str(tmp_path), "--fixed", str(tmp_path), "--out",
                   str(tmp_path / "a")], "is a folder, not an image")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "task_options.widths=0,0,0", "--out", str(tmp_path / "a")],
          "task_options.widths must be >= 1")
    fails(capsys, ["train", "inpainting", "--steps", "1", "--set", "task_options.adv_weight=-1",
                   "--out", str(tmp_path / "a")], "task_options.adv_weight must be >= 0")
    for bad, message in (("task_options.done_threshold=2", "done_threshold must be a Dice"),
                         ("train.policy_ema=1.5", "policy_ema must be in [0, 1)"),
                         ("train.first_share=1.5", "first_share must be in [0, 1]"),
                         ("sac.grad_clip=-1", "grad_clip must be >= 0"),
                         ("train.horizon=-1", "train.n_envs and train.horizon must be >= 1")):
        fails(capsys, ["train", "digits", "--steps", "1", "--set", bad, "--out", str(tmp_path / "a")], message)
    fails(capsys, ["train", "digits", "--steps", "1", "--out", ""], "--out is empty")
    for argv in (["experiment", "digits", "--minutes", "0.1"], ["eval", str(tmp_path)], ["stylize", "x.pt", "--content", "c.png"]):
        fails(capsys, [*argv, "--out", " "], "--out is empty")                     # every command: not the folder here
    for sets, message in ((["train.learning_starts=64", "train.replay_size=100"], "no update would ever run"),
                          (["sac.lr_critic=nan"], "sac.lr_critic must be a finite number"),
                          (["sac=1", "sac.gamma=0.9"], "--set sac.gamma clashes with another --set of sac"),
                          (["sac.gamma=0.9", "sac.gamma.x=1"], "clashes"),
                          ([".gamma=3"], "needs a name between its dots")):
        fails(capsys, ["train", "digits", "--steps", "1", *[a for kv in sets for a in ("--set", kv)],
                       "--out", str(tmp_path / "a")], message)
    fails(capsys, ["train", "inpainting", "--steps", "1", "--set", "task_options.size=0", "--out", str(tmp_path / "a")],
          "power of two >= 8")
    fails(capsys, ["train", "digits", "--minutes", "inf", "--out", str(tmp_path / "a")], "minutes must be a finite")
    fails(capsys, ["train", "digits", "--steps", "1", "--seed", str(2 ** 64), "--out", str(tmp_path / "a")],
          "seed must be from 0")
    (tmp_path / "list.json").write_text("[1, 2]")
    fails(capsys, ["train", "digits", "--steps", "1", "--config", str(tmp_path / "list.json"), "--out",
                   str(tmp_path / "a")], "holds a list, not a table")
    fails(capsys, ["experiment", "digits", "--minutes", "1", "--config", "registration", "--out", str(tmp_path / "a")],
          "registration config")
    fails(capsys, ["experiment", "digits", "--minutes", "1", "--set", "train.steps=3", "--out", str(tmp_path / "a")],
          "each method trains for --minutes; leave it out")
    fails(capsys, ["train", "digits", "--steps", "1", "--set", "train=5", "--out", str(tmp_path / "a")],
          "train is a table of settings (train.KEY = VALUE)")      # not dropped for --steps' train.steps
    fails(capsys, ["experiment", "digits", "--minutes", "1", "--set", "sac.use_rl=false", "--out", str(tmp_path / "a")],
          "--set sac.use_rl: each method sets it")
    fails(capsys, ["experiment", "digits", "--minutes", "1", "--set", "task=translation", "--out", str(tmp_path / "a")],
          "--set task=translation: the experiment is defined for digits")
    if not torch.cuda.is_available():          # the config's or --set's device is the experiment's, not cpu
        fails(capsys, ["experiment", "digits", "--minutes", "1", "--set", "device=cuda", "--out", str(tmp_path / "a")],
              "torch sees no CUDA device")
        (tmp_path / "cuda.toml").write_text('task = "digits"\ndevice = "cuda"\n')
        fails(capsys, ["experiment", "digits", "--minutes", "1", "--config", str(tmp_path / "cuda.toml"), "--out",
                       str(tmp_path / "a")], "torch sees no CUDA device")
    run = tmp_path / "trained"                  # a run's folder: its curves.png would be replaced
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "curves.png").write_bytes(b"mine")
    fails(capsys, ["experiment", "digits", "--minutes", "1", "--out", str(run)], "holds a run (config.json)")
    assert (run / "curves.png").read_bytes() == b"mine" and sorted(p.name for p in run.iterdir()) == ["config.json", "curves.png"]
    long = tmp_path / ("x" * 300)                               # the folder named, not a fine-tune's under it
    fails(capsys, ["train", "digits", "--steps", "1", "--out", str(long)], f"cannot write to {long}: File name too long")
    (tmp_path / "afile").write_text("mine")                     # an existing file as --out: said so (was
    with pytest.raises(UserError, match="afile: it is a file, not a folder"):      # "File exists")
        writable_dir(tmp_path / "afile")
    assert not (tmp_path / "a").exists()
    project = tmp_path / "project"                   # a folder of the user's own: its config.json is kept
    project.mkdir()
    (project / "config.json").write_text('{"name": "my app settings"}')
    (project / "curves.png").write_bytes(b"mine")
    fails(capsys, ["train", "digits", "--steps", "1", "--out", str(project)], "but no rl-i2it run")
    assert (project / "config.json").read_text() == '{"name": "my app settings"}'
    # a run whose checkpoint.pt was deleted (to save disk) keeps its model: not trained over, not by another task
    kept = tmp_path / "kept"
    shutil.copytree(run_dir, kept)
    (kept / "checkpoint.pt").unlink()
    before = (kept / "policy.pt").read_bytes()
    fails(capsys, ["train", "style", "--steps", "1", "--out", str(kept)], "holds a digits run")
    fails(capsys, ["train", "digits", "--steps", "1", "--out", str(kept)], "no checkpoint.pt to resume")
    assert (kept / "policy.pt").read_bytes() == before


def test_eval_writes_table_and_pictures(tmp_path, run_dir, capsys):
    out = tmp_path / "ev"
    assert main(["eval", str(run_dir), "--n-moving", "6", "--steps", "1,3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| RL-I2IT | 3 |" in text and "| identity | 0 |" in text
    res = json.loads((out / "results.json").read_text())
    assert set(res["methods"]) == {"identity", "rl"} and res["protocol"]["pairs"] == 54   # cross: 6 x 9
    assert all((out / n).is_file() for n in ("steps_rl.png", "chain_rl.png", "curves.png", "results.md"))


def test_eval_notes_a_main_run_trained_without_rl(tmp_path, run_dir, capsys):
    """The table's row is named RL-I2IT: a run trained without RL is said to be one."""
    run = tmp_path / "norl"
    shutil.copytree(run_dir, run)
    for name in ("policy.pt", "checkpoint.pt"):
        obj = torch.load(run / name, weights_only=True)
        obj["config"]["sac"]["use_rl"], obj["config"]["train"]["horizon"] = False, 1
        torch.save(obj, run / name)
    assert main(["eval", str(run), "--n-moving", "2", "--steps", "1", "--out", str(tmp_path / "ev")]) == 0
    err = capsys.readouterr().err
    assert f"note: {run} was trained without RL in 1-step episodes: the table names it RL-I2IT" in err
    assert main(["eval", str(run_dir), "--n-moving", "2", "--steps", "1", "--out", str(tmp_path / "ev2")]) == 0
    assert "note" not in capsys.readouterr().err
    fails(capsys, ["eval", str(run), "--style", "s.png"], "--style is for style runs")   # the error alone, no note
    assert main(["eval", str(run_dir), "--n-moving", "2", "--transform", "inner", "--steps", "1",
                 "--out", str(tmp_path / "ev3")]) == 0                  # 2 moving digits: 2 classes at most
    assert "note: no test pair of classes " in capsys.readouterr().err


def test_data_fetch_lists_the_data_not_the_lock_or_a_write_under_way(tmp_path, monkeypatch, capsys):
    from rl_i2it.data.volumes import ITK_SLICES
    monkeypatch.setenv("RL_I2IT_DATA", str(tmp_path))
    folder = tmp_path / "registration" / "itk"
    folder.mkdir(parents=True)
    for name in [*ITK_SLICES, ".fetch.lock", "BrainT1Slice.png.x1y2.tmp"]:
        (folder / name).write_bytes(b"")
    assert main(["data", "fetch", "itk"]) == 0                 # all there: nothing fetched, listed
    assert capsys.readouterr().out.strip() == f"itk: {', '.join(sorted(ITK_SLICES))} in {folder}"


def test_preset_documents_every_field():
    """Every config field has a line in the digits preset, and the preset equals the defaults."""
    import dataclasses
    from rl_i2it.config import Config
    from rl_i2it.tasks.digits import DigitsOptions
    text = (DEFAULT_CONFIGS / "digits.toml").read_text()
    cfg = load_config(DEFAULT_CONFIGS / "digits.toml")
    for cls in (Config, type(cfg.sac), type(cfg.train), DigitsOptions):
        for f in dataclasses.fields(cls):
            if f.name not in ("sac", "train", "task_options"):
                line = next((ln for ln in text.splitlines() if ln.startswith(f.name + " ")), None)
                assert line and "#" in line, f.name
    assert cfg.sac == type(cfg.sac)() and cfg.train == type(cfg.train)()
    assert DigitsTask(cfg.task_options).options == DigitsOptions()


def test_eval_and_train_refuse_bad_requests_before_any_work(tmp_path, run_dir, capsys):
    out = tmp_path / "ev"
    fails(capsys, ["eval", str(run_dir), "--n-moving", "0", "--out", str(out)], "n-moving")
    fails(capsys, ["eval", str(run_dir), "--norl", str(tmp_path / "missing"), "--out", str(out)], "not found")
    assert not out.exists()
    fails(capsys, ["eval", str(run_dir), "--pairs", str(tmp_path / "p.csv"), "--out", str(out)], "--pairs is for registration")
    fails(capsys, ["eval", str(run_dir / "policy.pt"), "--out", str(out)], "give the run directory")
    (tmp_path / "stray.pt").write_text("not a run")
    fails(capsys, ["eval", str(tmp_path / "stray.pt"), "--out", str(out)], "is a file, not a run directory")
    (tmp_path / "file").write_text("")
    fails(capsys, ["eval", str(run_dir), "--out", str(tmp_path / "file" / "ev")], "is a file")
    assert not out.exists()
    fails(capsys, ["train", "digits", "--out", str(tmp_path / "r")], "stopping rule")
    fails(capsys, ["train", "digits", "--steps", "2", "--set", "train.horizon=0", "--out", str(tmp_path / "r")], "horizon")
    assert not (tmp_path / "r").exists()


def test_eval_accepts_policy_files_for_baselines(tmp_path, run_dir):
    out = tmp_path / "ev"
    assert main(["eval", str(run_dir), "--norl", str(run_dir / "policy.pt"), "--n-moving", "3",
                 "--steps", "1", "--out", str(out)]) == 0
    assert "norl" in json.loads((out / "results.json").read_text())["methods"]


def test_eval_scores_baselines_on_the_main_runs_pairs(tmp_path, run_dir, digits, capsys):
    """A baseline trained with another transform, scale or rotation range is scored on the main run's
    pairs (it took its own: the table compared methods on different pairs); one trained on other
    digits is refused."""
    data = run_dir.parent / "digits.npz"
    for name, source in (("inner", str(data)), ("other", str(tmp_path / "other.npz"))):
        np.savez(tmp_path / "other.npz", train_x=digits.train_x, train_y=digits.train_y, test_x=digits.test_x,
                 test_y=digits.test_y)
        opts = dict(SMALL, transform="inner", source=source, scale_range=[0.9, 1.1], rotation_range=[0.0, 10.0])
        cfg = load_config(None, {"task_options": opts, "train": {"n_envs": 8, "horizon": 2, "learning_starts": 8,
                                                                 "steps": 2, "replay_size": 64}, "sac": {"batch_size": 8}})
        Trainer(cfg, tmp_path / name, task=DigitsTask(opts, data=digits), verbose=False).train()
    out = tmp_path / "ev"
    assert main(["eval", str(run_dir), "--onestep", str(tmp_path / "inner"), "--n-moving", "4", "--steps", "1",
                 "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["protocol"]["transform"] == "cross"                     # the main run's
    assert len({m["pairs"] for m in res["methods"].values()}) == 1, res["methods"]
    assert main(["eval", str(run_dir), "--onestep", str(tmp_path / "inner"), "--n-moving", "4", "--steps", "1",
                 "--transform", "random", "--out", str(tmp_path / "ev-random")]) == 0
    res_random = json.loads((tmp_path / "ev-random" / "results.json").read_text())["methods"]
    from PIL import Image
    first = {m: np.asarray(Image.open(tmp_path / "ev-random" / f"steps_{m}.png"))[:40, :40] for m in ("rl", "onestep")}
    assert np.array_equal(first["rl"], first["onestep"])          # its pictures show the same moving digits too
    unmoved = {name: m["dice"]["0"]["mean"] for name, m in res_random.items()}   # before any step: the same pairs,
    assert len(set(unmoved.values())) == 1, unmoved              # not ones scaled and rotated by the baseline's ranges
    assert (out / "steps_onestep.png").is_file()
    assert main(["eval", str(run_dir), "--n-moving", "4", "--steps", "1", "--out", str(out)]) == 0
    assert not (out / "steps_onestep.png").exists()                   # no picture of a baseline not given
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--norl", str(tmp_path / "other"), "--n-moving", "4",
                 "--out", str(tmp_path / "ev2")]) == 2
    assert "was trained on other digits" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "ev2").exists()


def test_experiment_trains_three_methods_and_prints_the_table(tmp_path, run_dir, capsys):
    data = run_dir.parent / "digits.npz"
    sets = ["--set=task_options.source=" + str(data), "--set=task_options.widths=8,16,16",
            "--set=task_options.critic_widths=8,8,8", "--set=task_options.critic_hidden=32",
            "--set=train.n_envs=8", "--set=train.horizon=2", "--set=train.learning_starts=8",
            "--set=sac.batch_size=8", "--set=train.replay_size=64"]
    out = tmp_path / "x"
    fails(capsys, ["experiment", "digits", "--minutes", "0.01", "--n-moving", "100000", "--out", str(out), *sets], "n-moving")
    assert not out.exists()
    assert main(["experiment", "digits", "--minutes", "0.01", "--n-moving", "2", "--out", str(out), *sets]) == 0
    text = capsys.readouterr().out
    assert "| one-step (VM-style) | 1 |" in text and "| RL-I2IT w/o RL | 20 |" in text and "classes" in text
    res = json.loads((out / "results.json").read_text())
    assert list(res["methods"]) == ["identity", "onestep", "norl", "rl"]
    cfg = json.loads((out / "onestep" / "config.json").read_text())
    assert cfg["train"]["horizon"] == 1 and cfg["sac"]["use_rl"] is False and cfg["task_options"]["max_step"] == 14.0
    assert cfg["task_options"]["widths"] == [8, 16, 16] and cfg["task_options"]["critic_hidden"] == 32   # not "32"


@pytest.mark.parametrize("preset", ["registration", "liver3d", "liver3d-128", "inpainting", "inpainting-128",
                                    "translation", "style", "style-arbitrary", "style-video"])
def test_task_presets_document_every_task_option(preset):
    import dataclasses
    from rl_i2it.tasks import task_class
    text = (DEFAULT_CONFIGS / f"{preset}.toml").read_text()
    cfg = load_config(DEFAULT_CONFIGS / f"{preset}.toml")
    cls = task_class(cfg.task)
    for f in dataclasses.fields(cls.Options):
        line = next((ln for ln in text.splitlines() if ln.startswith(f.name + " ")), None)
        assert line and "#" in line, f.name
    task = cls(cfg.task_options)            # validates; builds no data
    if cfg.task == "registration":
        assert task.plan_shape[1:] == (8,) * task.dims
    if preset in ("inpainting", "translation", "style"):      # the demo presets are the options' defaults
        assert task.options == cls.Options()


def test_huge_image_and_out_of_memory_are_one_line(tmp_path, run_dir, digits, capsys, monkeypatch):
    """A decompression bomb (PIL's limit, lowered here) and an allocation failure deep in a
    command: one line, exit 2, no traceback."""
    from PIL import Image

    import rl_i2it.cli as cli
    m = digit_png(tmp_path / "m.png", digits, 0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)         # 28 x 28 > 2 x 100 pixels
    fails(capsys, ["translate", str(run_dir), "--moving", str(m), "--fixed", str(m), "--out", str(tmp_path / "o")],
          "decompression bomb")
    assert not (tmp_path / "o").exists()

    def no_memory(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 88800000000 bytes.")
    monkeypatch.setattr(cli, "cmd_stylize", no_memory)
    fails(capsys, ["stylize", "x.pt", "--content", "c.png", "--out", str(tmp_path / "o")],
          "): use smaller images (--size")                                  # advice for the command at hand
    monkeypatch.setattr(cli, "cmd_train", no_memory)
    fails(capsys, ["train", "digits", "--steps", "1", "--out", str(tmp_path / "o")], "): use a smaller train.replay_size")

    def bug(args):
        raise RuntimeError("shape mismatch")                     # not a memory error: a real traceback
    monkeypatch.setattr(cli, "cmd_stylize", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["stylize", "x.pt", "--content", "c.png", "--out", str(tmp_path / "o")])


def test_train_methods_takes_a_number_of_updates_in_place_of_minutes(tmp_path, run_dir, capsys):
    from rl_i2it.core import checkpoint as ckpt
    from rl_i2it.experiment import train_methods
    over = {"task_options": {"source": str(run_dir.parent / "digits.npz"), "widths": [8, 16, 16],
                             "critic_widths": [8, 8, 8], "critic_hidden": 32},
            "train": {"n_envs": 8, "horizon": 2, "learning_starts": 8, "replay_size": 64}, "sac": {"batch_size": 8}}
    train_methods(tmp_path, 100.0, None, {**over, "task": "digits"}, {"rl": {}}, steps=3)
    assert "for 3 updates" in capsys.readouterr().out
    counters = ckpt.load(tmp_path / "rl" / "checkpoint.pt")["counters"]
    assert 3 <= counters["updates"] <= 4                 # stops at the end of the episode that reaches 3
    assert json.loads((tmp_path / "rl" / "config.json").read_text())["train"]["minutes"] == 0


def test_experiment_methods_are_what_their_rows_say_whatever_the_config(tmp_path, monkeypatch):
    """A --config (or library overrides) without RL cannot turn the RL-I2IT row into a second w/o RL."""
    import rl_i2it.experiment as experiment
    seen = {}
    monkeypatch.setattr(experiment, "train_run", lambda cfg, run, verbose: seen.__setitem__(run.name, cfg))
    experiment.train_methods(tmp_path, 1.0, None, {"task": "digits", "sac": {"use_rl": False}}, verbose=False)
    assert seen["rl"].sac.use_rl and not seen["norl"].sac.use_rl and not seen["onestep"].sac.use_rl
    assert seen["onestep"].train.horizon == 1 < seen["norl"].train.horizon == seen["rl"].train.horizon
    assert all(cfg.sac.use_aux for cfg in seen.values())


def test_ctrl_c_outside_training_is_one_line_exit_130(tmp_path, monkeypatch, capsys):
    """A Ctrl-C before training's own handler is in place (loading data, say): no traceback."""
    import rl_i2it.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_data", interrupted)
    assert main(["data", "fetch", "mnist"]) == 130
    assert capsys.readouterr().err.strip() == "rl-i2it: interrupted"
    monkeypatch.setattr(cli, "build_parser", lambda: interrupted(None))    # in the first second, before the command
    assert main(["data", "fetch", "mnist"]) == 130
    assert capsys.readouterr().err.strip() == "rl-i2it: interrupted"


def test_argparse_errors_are_one_line_exit_2(capsys):
    """`--minutes abc`, a missing option, an unknown command: one `rl-i2it: error:` line, exit 2."""
    for argv, message in ((["train", "digits", "--minutes", "abc"], "invalid float value: 'abc'"),
                          (["register", "run"], "required: --out"),
                          (["nosuch"], "invalid choice: 'nosuch'"),
                          (["experiment", "digits", "--minutes", "0"], "argument --minutes: must be above 0, got 0"),
                          (["train", "digits", "--steps", "-5"], "argument --steps: must be above 0"),   # the flag,
                          (["train", "digits", "--horizon", "0"], "argument --horizon: must be above 0")):  # not a key
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("rl-i2it: error:") and message in err[0]


def test_presets_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    """`--config configs/liver3d.toml` (the README's spelling), `liver3d.toml` or `liver3d` read the
    shipped preset from any folder, as an installed package runs; an unknown name lists them."""
    from rl_i2it.config import PRESETS, load_config, read_config
    from rl_i2it.errors import UserError
    monkeypatch.chdir(tmp_path)
    want = read_config(PRESETS / "liver3d.toml")
    for name in ("configs/liver3d.toml", "liver3d.toml", "liver3d"):
        assert read_config(name) == want
    assert load_config("digits").task == "digits"
    (tmp_path / "liver3d.toml").write_text('task = "digits"\n')          # a file of that name wins
    assert read_config("liver3d.toml") == {"task": "digits"}
    with pytest.raises(UserError, match="config file not found: nope.toml .*liver3d-128, registration"):
        read_config("nope.toml")
    with pytest.raises(UserError, match="config file not found"):
        read_config("elsewhere/liver3d.toml")                           # a folder named: no fallback


def test_output_is_line_buffered_into_a_file_or_pipe(tmp_path):
    """`rl-i2it train ... > log`: each line reaches the log as it is printed (Python block-buffers
    a pipe or file, which held a long run's first lines back for minutes)."""
    import subprocess
    import sys
    code = ("import sys; from rl_i2it.cli import main; main(['eval', 'no-such-run']); "
            "print(sys.stdout.line_buffering)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "True" and "no-such-run" in out.stderr


def test_python_dash_m_runs_the_command_with_its_exit_status(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "rl_i2it", "eval", "no-such-run"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 2 and "no-such-run is not a run directory" in out.stderr


def test_relative_paths_in_a_config_are_made_absolute(tmp_path, monkeypatch, digits):
    """``--set task_options.pairs=manifest:pairs.csv`` and the like are stored absolute in the run's
    config, so eval and resume work from any folder (they named a file relative to the folder the
    training ran in); names (starry_night, made+photos) and paths that do not exist stay as given.
    A run saved with a relative path by an older version still resumes from its folder."""
    from rl_i2it.config import absolute_paths
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs.csv").write_text("moving,fixed\n")
    (tmp_path / "styles").mkdir()
    (tmp_path / "photos").mkdir()                                # a folder named like the named source
    reg = absolute_paths({"task": "registration", "task_options": {"pairs": "manifest:pairs.csv"}})
    assert reg["task_options"]["pairs"] == f"manifest:{tmp_path / 'pairs.csv'}"
    style = {"task": "style", "task_options": {"styles": "styles", "content": "photos", "style": "starry_night"},
             "train": {"init": "styles"}}
    assert absolute_paths(style) == {**style, "task_options": {**style["task_options"], "styles": str(tmp_path / "styles")},
                                     "train": {"init": str(tmp_path / "styles")}}
    kept = {"task": "style", "task_options": {"styles": "made+photos", "style": "missing.jpg"}}
    assert absolute_paths(kept) == kept                          # the error later names it as typed
    assert absolute_paths({"task": "digits", "task_options": {"pairs": "manifest:pairs.csv"}})["task_options"] == {
        "pairs": "manifest:pairs.csv"}                           # another task's key: not a path there
    assert load_config(None, {"task": "registration", "task_options": {"pairs": "manifest:pairs.csv"}}
                       ).task_options["pairs"] == f"manifest:{tmp_path / 'pairs.csv'}"
    # an older version saved the path as typed: the same command resumes the run
    from rl_i2it.core import checkpoint as ckpt
    np.savez(tmp_path / "digits.npz", train_x=digits.train_x, train_y=digits.train_y, test_x=digits.test_x,
             test_y=digits.test_y)
    over = {"task_options": dict(SMALL, transform="cross", source="digits.npz"),
            "train": {"n_envs": 8, "horizon": 2, "learning_starts": 8, "steps": 2, "replay_size": 64},
            "sac": {"batch_size": 8}}
    cfg = load_config(None, over)
    assert cfg.task_options["source"] == str(tmp_path / "digits.npz")
    Trainer(cfg, tmp_path / "r", verbose=False).train()
    saved = ckpt.load(tmp_path / "r" / "checkpoint.pt", (ckpt.TRAIN_FORMAT,))
    saved["config"]["task_options"]["source"] = "digits.npz"
    torch.save(saved, tmp_path / "r" / "checkpoint.pt")
    assert Trainer(load_config(None, over), tmp_path / "r", verbose=False).resumed     # refused: "another config"


def test_only_train_runs_under_torchrun(tmp_path, monkeypatch, capsys):
    """Started by torchrun (WORLD_SIZE > 1) any other command is refused, each rank naming itself."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    from rl_i2it.core import parallel
    ended = []                                # under torchrun the process ends at once with the status
    monkeypatch.setattr(parallel.os, "_exit", ended.append)
    assert main(["eval", str(tmp_path / "run")]) == 2 and ended == [2]
    err = capsys.readouterr().err
    assert err.startswith("rl-i2it (rank 1): error: only `rl-i2it train` runs under torchrun"), err
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("LOCAL_RANK")          # a batch system's WORLD_SIZE alone is not torchrun
    assert main(["eval", str(tmp_path / "run")]) == 2 and ended == [2]
    assert "torchrun" not in capsys.readouterr().err


def test_eval_steps_list_is_sorted_deduplicated_and_every_count_checked():
    """cli._steps_list must check every count (not just the first) and sort: `--steps 1,1000`
    would run a 1000-step rollout without a word; `5,0,10` reach the task as an unchecked 0."""
    from rl_i2it.cli import MAX_STEPS, _steps_list
    from rl_i2it.errors import UserError
    assert _steps_list("10, 1,5,5") == [1, 5, 10]
    for bad in (f"1,{MAX_STEPS + 1}", "5,0,10"):
        with pytest.raises(UserError, match="--steps must be from 1"):
            _steps_list(bad)
