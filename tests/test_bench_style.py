"""bench/style.py's verdict: one line per target of the style issue, each saying met or NOT met;
bench/style_valid.py's check that an arbitrary model is run with each style's code and another's,
and its losses over steps on new crops of the training pictures."""
import re

import pytest
import torch

from conftest import load_bench
from test_cli_style import models  # noqa: F401  (tiny trained one-style and arbitrary models)


@pytest.fixture(scope="module")
def bench():
    return load_bench("style")


def row(content, style):
    return {"content": content, "style": style}


def verdicts(bench, video, ratio, t1=row(0.5, 8e-6)):
    curve = [[0.5 + 0.1 * t, 9e-6 - 3e-7 * t] for t in range(10)]
    res = {"rl_t1": t1, "onestep": row(0.6, 9e-6), "onnx_arbitrary": row(1.1, 3e-5)}
    unseen = {"made:1": {"arbitrary_curve": [[2.0, 1e-4]] * 10, "onnx_arbitrary": row(1.0, 3e-5)}}
    return bench.verdict(res, curve, unseen, (1.0, 1e5), video, ratio)


def test_every_target_has_a_line(bench):
    video = {"rl_image_t10": {"warp_error": 0.005, "style": 5e-6}, "rl_video_t10": {"warp_error": 0.002, "style": 5.4e-6}}
    lines = verdicts(bench, video, 0.3)
    assert lines[0].startswith("step-wise control") and lines[0].endswith(": met")
    assert lines[1].startswith("RL-I2IT T=1 vs one-step") and lines[1].endswith(": met")
    assert any(ln.startswith("arbitrary vs ONNX on unseen style made:1") and ln.endswith("NOT met") for ln in lines)
    assert lines[-2].startswith("video T=10") and lines[-2].endswith(": met")
    assert lines[-1].endswith("(target <= 0.5): met")


@pytest.mark.parametrize("warp, style", [(0.003, 5e-6), (0.002, 5.6e-6)])     # flicker above half / style > +10 %
def test_video_and_speed_targets_not_met(bench, warp, style):
    video = {"rl_image_t10": {"warp_error": 0.005, "style": 5e-6}, "rl_video_t10": {"warp_error": warp, "style": style}}
    lines = verdicts(bench, video, 0.6, t1=row(0.7, 8e-6))
    assert lines[1].endswith("NOT met") and lines[-2].endswith("NOT met") and lines[-1].endswith("NOT met")
    assert verdicts(bench, None, None)[-1].startswith("arbitrary vs ONNX")          # no video, no timing: no lines


def test_style_valid_codes_scores_own_and_other_codes(models, capsys):  # noqa: F811
    valid = load_bench("style_valid")
    valid.codes(str(models["arb"]), [5000, 5001])
    lines = [ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("made:")]
    assert len(lines) == 2 and "code of made:5001" in lines[0] and "code of made:5000" in lines[1]
    values = [float(v) for ln in lines for v in re.findall(r"\d\.\d\de[-+]\d\d", ln)]
    assert len(values) == 12 and all(v > 0 for v in values)                # T = 1, 5, 10, two codes each
    with pytest.raises(SystemExit, match="one is not an arbitrary-style model"):
        valid.codes(str(models["one"]), [5000, 5001])
    with pytest.raises(SystemExit, match="give two seeds or more"):          # one seed: compared with itself
        valid.codes(str(models["arb"]), [5000])


def test_style_valid_scale_measures_codes_at_each_side_and_restores_the_default(models, capsys, monkeypatch):  # noqa: F811
    import rl_i2it.features.style as objective
    from rl_i2it.data.images import from_uint8
    from rl_i2it.data.style import made_style
    valid = load_bench("style_valid")
    monkeypatch.setattr(valid, "validation_styles", lambda side: {"made:5000": from_uint8(made_style(5000, 48))[None]})
    seen, code = [], objective.StyleObjective.style_code
    monkeypatch.setattr(objective.StyleObjective, "style_code",
                        lambda self, style: seen.append(objective.code_image(style).shape[-1]) or code(self, style))
    valid.scale([str(models["arb"])], sides=(0, 32), n=2)
    assert seen == [48, 32] and objective.CODE_SIDE == 256
    line = [ln.strip() for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("made:5000")][0]
    assert line.startswith("made:5000") and "48x48" in line and "own: " in line and "| 32: " in line
    assert len(re.findall(r"\d\.\d\de[-+]\d\d", line)) == 4                     # style at T = 1 and 10, twice


def test_style_valid_steps_scores_new_crops_of_the_training_pictures(models, capsys):  # noqa: F811
    valid = load_bench("style_valid")
    valid.steps([str(models["one"])], n=4)
    line = [ln for ln in capsys.readouterr().out.splitlines() if str(models["one"]) in ln][0]
    num = r"(\d[\d.]*(?:e[-+]\d+)?)"
    cells = re.findall(rf"T(\d+): {num} / {num} \({num}\)", line)
    assert [int(c[0]) for c in cells] == [1, 2, 5, 10]
    for _, content, style, total in cells:                     # the sum is content + 1e5 x style
        content, style, total = float(content), float(style), float(total)
        assert content > 0 and style > 0
        assert total == pytest.approx(content + 1e5 * style, rel=2e-3)
    from rl_i2it.core.trainer import load_policy
    task = load_policy(models["one"])[0]
    bank, new = task.content_bank("train").cpu(), task.load_content("train", 4, 7)
    assert new.shape == (4, *bank.shape[1:]) and not any(torch.equal(c, b) for c in new for b in bank)


def test_style_valid_sway_clip_moves_a_picture_smoothly():
    pytest.importorskip("sklearn")
    valid = load_bench("style_valid")
    clip = valid.sway_clip(n=5)
    assert clip.shape == (5, 3, 120, 160) and 0 <= clip.min() and clip.max() <= 1
    step = (clip[1:] - clip[:-1]).abs().mean(dim=(1, 2, 3))
    assert (step > 1e-3).all() and (step < 0.1).all()              # every frame moves, a little
    assert torch.allclose(clip[4], clip[0], atol=1e-4)               # sin(2 pi 4 / 8) = 0: the picture at rest


def test_short_video_fine_tunes_move_as_far_as_the_preset_ones(bench):
    """The preset's rate is for 600-update fine-tunes; fewer take it larger (rate x updates kept),
    up to the image model's 1e-3; more keep it."""
    assert bench.fine_tune_rate(600, 3e-4) == pytest.approx(3e-4)
    assert bench.fine_tune_rate(2000, 3e-4) == pytest.approx(3e-4)
    assert bench.fine_tune_rate(300, 3e-4) == pytest.approx(6e-4)
    assert bench.fine_tune_rate(190, 3e-4) == pytest.approx(3e-4 * 600 / 190)
    assert bench.fine_tune_rate(50, 3e-4) == pytest.approx(1e-3)


def test_step_vs_vgg_is_step_over_vgg_with_the_warm_up_left_out(monkeypatch):
    """bench/style.py's speed target reads step_vs_vgg's ratio = (planner-actor step) /
    (VGG16 forward), each the median of `reps` timings after one untimed warm-up."""
    from types import SimpleNamespace
    bench = load_bench("style")
    clock = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    calls = {"step": 0, "vgg": 0}

    def tick(kind, cost):
        calls[kind] += 1
        clock[0] += 100.0 if calls[kind] == 1 else cost        # the first (warm-up) call is slow

    env = SimpleNamespace(start=lambda x, **k: {})
    task = SimpleNamespace(device=torch.device("cpu"), options=SimpleNamespace(arbitrary=False),
                           make_env=lambda *a: env, observe=lambda s: s,
                           objective=SimpleNamespace(vgg=lambda x, layers: tick("vgg", 1.0)))
    policy = lambda obs, sample=False: tick("step", 0.5)      # noqa: E731
    ratio, step, ref = bench.step_vs_vgg(task, policy, size=8, reps=1)
    assert (step, ref) == (0.5, 1.0)
    assert ratio == pytest.approx(0.5)
