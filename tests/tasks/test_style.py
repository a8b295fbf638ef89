"""Style transfer: losses, the fully convolutional nets, the environment's reward, learning,
inference at any size, and the arbitrary-style model. The loss network here is VGG16 with seeded
random weights (``vgg = "random"``): the tests need no download."""
import numpy as np
import pytest
import torch

from conftest import STYLE_SMALL, moving_frames, write_style
from rl_i2it.config import load_config
from rl_i2it.core.trainer import Trainer
from rl_i2it.errors import UserError
from rl_i2it.data.images import resize_longer
from rl_i2it.features.style import CODE_DIM, CODE_SIDE, StyleObjective, code_of_features
from rl_i2it.features.vgg import VGG16Features
from rl_i2it.nets.profile import count_params
from rl_i2it.nets.stylenet import StyleActor, StyleCritic, StylePlanner
from rl_i2it.ops.losses import gram, gram_distance, total_variation
from rl_i2it.tasks.style import (StyleTask, load_style_image, pad4, step_losses, style_losses, stylize, stylize_frames,
                                 video_scores)


def content_data(photos, n=48, size=32):
    from conftest import make_photos
    return {"train": make_photos(n, size, 0), "test": make_photos(8, size, 1)}


SMALL = {**STYLE_SMALL, "n_content": 48}


def style_task(tmp_path, **opts):
    style = write_style(tmp_path / "style.png")
    options = {**SMALL, "style": style, **opts}
    return StyleTask(options, data=content_data(None, size=options["size"]))


def trainer(tmp_path, steps, run="run", **over):
    style = write_style(tmp_path / "style.png")
    task_opts = {**SMALL, "style": style, **over.pop("task_options", {})}
    cfg = load_config(None, {"task": "style", "task_options": task_opts,
                             "train": {"steps": steps, "n_envs": 4, "horizon": 3, "learning_starts": 8,
                                       "replay_size": 200, "checkpoint_every_s": 0, "log_every": 5,
                                       **over.pop("train", {})},
                             "sac": {"batch_size": 4, "rl_warmup": 0, "lr_policy": 3e-3, "log_std_max": -2.0,
                                     "init_alpha": 0.0005, **over.pop("sac", {})}})
    task = StyleTask(cfg.task_options, data=content_data(None, size=task_opts["size"]))
    return Trainer(cfg, tmp_path / run, task=task, verbose=False)


# -- losses ------------------------------------------------------------------------------------
def test_gram_matches_its_definition_and_is_size_free():
    f = torch.randn(2, 3, 4, 5)
    g = gram(f)
    assert g.shape == (2, 3, 3)
    assert torch.allclose(g[1], f[1].reshape(3, 20) @ f[1].reshape(3, 20).T / 60, atol=1e-6)
    tiled = f.repeat(1, 1, 2, 2)                        # a texture twice as large: the same Gram
    assert torch.allclose(gram(tiled), g, atol=1e-6)
    assert torch.allclose(gram_distance(f, g), torch.zeros(2), atol=1e-10)
    assert gram_distance(f, g[:1])[1] > 0


def test_total_variation_is_a_sum_of_neighbour_differences():
    x = torch.zeros(2, 3, 4, 4)
    x[1, :, :, 2:] = 1.0                               # one vertical edge, 4 rows x 3 channels
    assert torch.equal(total_variation(x), torch.tensor([0.0, 12.0]))
    assert torch.equal(total_variation(x.transpose(2, 3)), torch.tensor([0.0, 12.0]))     # and a horizontal one


def test_objective_zero_at_the_targets_and_code_shape(smooth):
    obj = StyleObjective(VGG16Features(normalize=False, pretrained=False))
    x, style = smooth(2, 32, 0), smooth(1, 48, 1)
    c, s = obj(x, obj.content_features(x), obj.style_grams(style))
    assert torch.allclose(c, torch.zeros(2), atol=1e-10) and (s > 0).all()
    c2, s2 = obj(style, obj.content_features(smooth(1, 48, 2)), obj.style_grams(style))
    assert s2.item() < 1e-12 < c2.item()
    assert obj.style_code(style).shape == (1, CODE_DIM) == (1, 1920)
    grams, code = obj.style_stats(style)                  # the bank's form: both from one VGG16 pass
    assert all(torch.equal(a, b) for a, b in zip(grams, obj.style_grams(style), strict=True))
    assert torch.equal(code, obj.style_code(style))
    with pytest.raises(ValueError, match="raw RGB"):
        StyleObjective(VGG16Features(normalize=True, pretrained=False))


def test_style_code_is_measured_at_the_training_styles_scale(smooth):
    """A style larger than CODE_SIDE gives the code of its shrunk copy (a 12 MP photo costs one small
    VGG16 pass), its Gram targets stay at its own size; a smaller one is not enlarged."""
    obj = StyleObjective(VGG16Features(normalize=False, pretrained=False))
    big = smooth(1, 2 * CODE_SIDE, 3)[..., : CODE_SIDE + 100]          # 512 x 356: longer side 512
    shrunk = resize_longer(big, CODE_SIDE)
    assert shrunk.shape[-2:] == (CODE_SIDE, 178)
    code = obj.style_code(big)
    assert torch.equal(code, obj.style_code(shrunk))
    assert not torch.allclose(code, code_of_features(obj.features(big).values()), atol=1e-3)
    grams, bank_code = obj.style_stats(big)
    assert torch.equal(bank_code, code)
    assert all(torch.equal(a, b) for a, b in zip(grams, obj.style_grams(big), strict=True))
    small = smooth(1, 48, 4)
    assert torch.equal(obj.style_code(small), code_of_features(obj.features(small).values()))
    thin = smooth(1, 300, 5)[..., :16, :]                               # 16 x 300: VGG16's 16 px high
    assert obj.style_code(thin).shape == (1, CODE_DIM)                  # shrunk to 256 long, still 16 high
    assert obj.style_stats(thin)[1].shape == (1, CODE_DIM)


# -- nets --------------------------------------------------------------------------------------
def test_paper_sized_planner_actor_and_any_image_size():
    planner, actor = StylePlanner(), StyleActor(residual=True)
    assert 0.17e6 < count_params(planner) + count_params(actor) < 0.19e6         # paper: ~0.18 M
    x = torch.rand(1, 3, 36, 52)
    mu, log_std, skips = planner(x)
    assert mu.shape == log_std.shape == (1, 1, 9, 13)
    y = actor(mu, skips)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert (y - x).abs().max() < 0.05                 # residual actor: a new model barely changes the image
    critic = StyleCritic(1)
    assert critic(x, mu).shape == (1,)
    with pytest.raises(ValueError, match="multiples of 4"):
        planner(torch.rand(1, 3, 30, 32))


def test_reflection_padding_leaves_no_border():
    """A constant image stays spatially constant through planner and actor (zero padding would
    make the borders differ)."""
    torch.manual_seed(0)
    planner, actor = StylePlanner(), StyleActor(residual=False)
    x = torch.full((1, 3, 32, 40), 0.3)
    mu, _, skips = planner(x)
    y = actor(mu, skips)
    assert (y - y[:, :, :1, :1]).abs().max() < 1e-5


def test_pad4_reflects_to_multiples_of_four():
    x = torch.rand(1, 3, 37, 50)
    p, (h, w) = pad4(x)
    assert p.shape == (1, 3, 40, 52) and (h, w) == (37, 50)
    assert torch.equal(p[..., :37, :50], x) and torch.equal(p[..., 37, :50], x[..., 35, :])


# -- environment, replay, learning --------------------------------------------------------------
def test_reward_is_the_steps_decrease_of_the_weighted_style_loss(tmp_path):
    task = style_task(tmp_path)
    env = task.make_env(3, torch.Generator().manual_seed(0))
    state = env.reset()
    assert state["current"].shape == (3, 3, 32, 32) and torch.equal(state["current"], state["content"])
    obj, grams = task.objective, task.grams_of(state["style"])
    before = obj(state["current"], None, grams)[1]
    action = torch.rand(3, 3, 32, 32)
    nxt, reward, done, info = env.step(action)
    after = obj(action, None, grams)[1]
    assert torch.allclose(reward, 1e5 * (before - after), rtol=1e-4, atol=1e-6)
    assert torch.equal(nxt["current"], action) and not done.any()
    assert task.observe(nxt) is nxt["current"]


def test_step_losses_measure_every_step_against_the_style(tmp_path):
    """The curve is each step's mean content and style loss, as ``style_losses`` gives them one
    step at a time (5 crops: the loss batches of 8 straddle the steps)."""
    task = style_task(tmp_path)
    torch.manual_seed(0)
    policy = task.build_policy()
    content, style = torch.rand(5, 3, 32, 32), load_style_image(task.options.style)
    outs, _, curve = step_losses(task, policy, content, style, steps=3)
    assert len(outs) == len(curve) == 3 and outs[0].shape == content.shape
    for out, (c, s) in zip(outs, curve, strict=True):
        c1, s1 = style_losses(task, out, content, style)
        assert c == pytest.approx(c1.mean().item(), rel=1e-5) and s == pytest.approx(s1.mean().item(), rel=1e-5)
    assert curve[0] != curve[2]


def test_stylize_hands_each_step_on_and_keeps_only_the_last(tmp_path):
    """With ``on_step`` the steps come one at a time (what a caller keeps of them is its own: the CLI
    a thumbnail each) and only the last is returned; the images are those of the plain call."""
    from rl_i2it.tasks.style import stylize
    task = style_task(tmp_path)
    torch.manual_seed(0)
    policy = task.build_policy()
    content = torch.rand(2, 3, 30, 34)                       # not multiples of 4: cropped back
    every, _ = stylize(task, policy, content, 3)
    seen = []
    last, _ = stylize(task, policy, content, 3, on_step=seen.append)
    assert len(last) == 1 and len(seen) == 3 and seen[0].shape == content.shape
    assert all(torch.equal(a, b) for a, b in zip(seen, every, strict=True)) and torch.equal(last[0], every[-1])


def test_short_training_beats_the_untrained_policy(tmp_path):
    """A few dozen updates on the auxiliary + RL objective lower the weighted loss after one step
    by a third against the untrained model (random VGG, 32 px; its features are small, hence
    the weights)."""
    tr = trainer(tmp_path, 80, task_options={"style_weight": 1e9, "content_weight": 1e3})
    task = tr.task
    o = task.options
    content = task.content_bank("test").float() / 255
    style = load_style_image(o.style)

    def total(policy):
        out, _ = stylize(task, policy, content, 1)
        c, s = style_losses(task, out[0], content, style)
        return float((o.content_weight * c + o.style_weight * s).mean())

    before = total(tr.policy)
    tr.train()
    after = total(tr.policy)
    assert after < 0.67 * before, (before, after)


def test_training_without_rl_logs_strict_json_without_a_score(tmp_path):
    """Without RL a style episode measures no style loss (no reward to give): no score is logged
    (it was NaN, which is not JSON), and the curves say the panel was not measured."""
    import json
    tr = trainer(tmp_path, 6, sac={"use_rl": False})
    tr.train()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl")) for line in lines]
    assert rows and all("score" not in r and r["style"] > 0 for r in rows)     # 1e-10: six significant digits kept
    assert (tmp_path / "run" / "curves.png").is_file()


def test_training_resumes_and_the_policy_loads(tmp_path):
    from rl_i2it.core.trainer import load_policy
    tr = trainer(tmp_path, 10)
    tr.train()
    tr2 = trainer(tmp_path, 14)
    assert tr2.resumed and tr2.counters["updates"] == 10
    tr2.train()
    task, policy, cfg = load_policy(tmp_path / "run")
    assert cfg.task == "style" and isinstance(task, StyleTask)
    out, _ = stylize(task, policy, torch.rand(1, 3, 21, 30), 2)
    assert len(out) == 2 and out[1].shape == (1, 3, 21, 30)


# -- arbitrary style ---------------------------------------------------------------------------
def test_arbitrary_model_observes_the_style_code_and_takes_any_style(tmp_path):
    styles = tmp_path / "styles"
    styles.mkdir()
    for i in range(3):
        write_style(styles / f"s{i}.png", seed=i)
    task = style_task(tmp_path, arbitrary=True, styles=str(styles), n_styles=3)
    grams, codes = task.style_bank()
    assert codes.shape == (3, CODE_DIM) and grams[0].shape == (3, 64, 64)
    from rl_i2it.core.checkpoint import data_fingerprint                # a resume checks the style files too
    key = data_fingerprint(task.training_tensors())
    write_style(styles / "s1.png", seed=7)                            # the same count, another picture
    assert data_fingerprint(style_task(tmp_path, arbitrary=True, styles=str(styles), n_styles=3).training_tensors()) != key
    write_style(styles / "s1.png", seed=1)
    assert data_fingerprint(style_task(tmp_path, arbitrary=True, styles=str(styles), n_styles=3).training_tensors()) == key
    env = task.make_env(4, torch.Generator().manual_seed(0))
    state = env.reset()
    obs = task.observe(state)
    assert obs["code"].shape == (4, CODE_DIM) and obs["image"] is state["current"]
    replay_like = {"current": state["current"], "style": state["style"], "index": state["index"]}
    assert torch.equal(task.observe(replay_like)["code"], obs["code"])      # replay states look the code up
    policy = task.build_policy()
    other = torch.rand(1, 3, 40, 24)                              # a style not in the bank, any size
    out, _ = stylize(task, policy, torch.rand(2, 3, 32, 28), 2, style_image=other)
    assert out[-1].shape == (2, 3, 32, 28)
    frames = torch.rand(3, 3, 32, 28)
    measured, code_of = [], task.objective.style_code
    task.objective.style_code = lambda image: measured.append(1) or code_of(image)
    video = [o for o, _ in stylize_frames(task, policy, frames, 2, other)]
    del task.objective.style_code
    assert len(measured) == 1                                      # the style's code once, not once a frame
    for frame, o in zip(frames, video):
        assert torch.allclose(o, stylize(task, policy, frame[None], 2, other)[0][-1][0], atol=1e-6)
    with pytest.raises(ValueError, match="needs a style image"):
        stylize(task, policy, torch.rand(1, 3, 32, 32), 1)
    with pytest.raises(UserError, match="holds 3 style images.*n_styles=3 uses them all"):
        style_task(tmp_path, arbitrary=True, styles=str(styles), n_styles=5).style_bank()
    write_style(styles / "s9.png", size=4)                     # a 4x4 style in the folder
    with pytest.raises(UserError, match="s9.png is 4x4: it needs at least 16x16"):
        style_task(tmp_path, arbitrary=True, styles=str(styles), n_styles=4).style_bank()


def test_arbitrary_episodes_draw_every_style_of_a_two_source_bank(tmp_path, monkeypatch):
    from rl_i2it.data import paired
    photo = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    monkeypatch.setattr(paired, "sample_photos", lambda: [("photos:p.jpg", photo)])
    task = style_task(tmp_path, arbitrary=True, styles="made+photos", n_styles=2)
    grams, codes = task.style_bank()
    assert codes.shape[0] == grams[0].shape[0] == 4               # 2 made textures + 2 photo crops
    env = task.make_env(8, torch.Generator().manual_seed(0))
    drawn = torch.cat([env.reset()["style"] for _ in range(6)])
    assert set(drawn.tolist()) == {0, 1, 2, 3}                    # the photo crops are trained on too


def test_bad_options_are_user_errors(tmp_path):
    for bad in ({"size": 30}, {"widths": [8, 8]}, {"vgg": "imagenet"}, {"style_weight": -1.0}, {"temporal_steps": 0}):
        with pytest.raises(UserError):
            StyleTask({**SMALL, **bad})
    with pytest.raises(UserError, match="not a readable image|not found"):
        StyleTask({**SMALL, "style": str(tmp_path / "missing.png")}).style_bank()
    for styles in ("made", "made+photos"):          # the validation and unseen textures never train
        with pytest.raises(UserError, match="validation textures .*at most 5000"):
            StyleTask({**SMALL, "arbitrary": True, "styles": styles, "n_styles": 5001})
    StyleTask({**SMALL, "arbitrary": True, "styles": "photos", "n_styles": 5001})     # crops: no seeds to meet


# -- video ---------------------------------------------------------------------------------------
def test_video_planner_carries_two_gru_memories():
    planner, actor = StylePlanner(step_gru=True, frame_gru=True, memory_channels=16), StyleActor()
    x, memory = torch.rand(2, 3, 32, 40), torch.zeros(2, 32, 8, 10)
    mu, _, skips = planner({"image": x, "memory": memory})
    action = actor(mu, skips)
    assert action.shape == (2, 3 + 2, 32, 40)                     # image + memory, space-to-depth
    new = torch.nn.functional.pixel_unshuffle(action[:, 3:], 4)
    assert new.shape == memory.shape and new.abs().max() > 0 and new.abs().max() < 1
    only_step = StylePlanner(step_gru=True, frame_gru=False)
    _, _, skips = only_step({"image": x, "memory": memory})
    assert torch.equal(skips[-1][:, 16:], memory[:, 16:])         # the ablated GRU's half stays as it was
    with pytest.raises(ValueError, match="needs its memory"):
        planner(x)


def test_video_episode_moves_the_frame_and_keeps_the_frame_memory(tmp_path):
    task = style_task(tmp_path, video=True, frame_steps=2)
    env = task.make_env(2, torch.Generator().manual_seed(0))
    state = env.reset()
    first = state["content"].clone()
    assert state["memory"].shape == (2, 32, 8, 8) and not state["memory"].any()
    policy = task.build_policy()
    for step in range(2):
        out = policy(task.observe(state))
        state, reward, _, _ = env.step(out.action)
    assert torch.isfinite(reward).all()
    assert not torch.equal(state["content"], first)                # a new (moved) frame
    assert torch.equal(state["current"], state["content"])
    assert not state["memory"][:, :16].any() and state["memory"][:, 16:].abs().sum() > 0
    fields = task.state_fields()
    assert fields["memory"].dtype == "float16" and fields["content"].dtype == "uint8"


def test_real_motion_moves_the_frame_by_a_flow_of_the_bank(tmp_path, monkeypatch):
    """``motion = "real"``: a training clip's next frame and the temporal term's moved state are
    warped by a flow of the bank (here every flow 3 px along x) plus the global shift (off here)."""
    from rl_i2it.ops.temporal import warp_image
    task = style_task(tmp_path, video=True, frame_steps=1, motion="real", motion_pixels=0.0, motion_noise=0.0)
    flow = torch.zeros(5, 2, 32, 32, dtype=torch.float16)
    flow[:, 0] = 3.0
    task._data["flows"] = flow
    env = task.make_env(2, torch.Generator().manual_seed(0))
    first = env.reset()["content"].clone()
    policy = task.build_policy()
    state, *_ = env.step(policy(task.observe(env.state)).action)
    assert torch.allclose(state["content"], warp_image(first, flow[:2].float()), atol=1e-6)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8), size=(32, 32), mode="bilinear")
    mem = torch.zeros(2, 32, 8, 8)
    flows = []
    from rl_i2it.ops import temporal
    monkeypatch.setattr(temporal, "warp_image", lambda image, f: flows.append(f) or warp_image(image, f))
    assert task.temporal_loss({"current": x, "style": torch.zeros(2, dtype=torch.long), "memory": mem},
                              _Identity()) < 1e-6
    assert torch.equal(flows[0], flow[:2].float())                  # the frame moved by a flow of the bank
    monkeypatch.undo()
    task._flows = None
    task._data["flows"] = flow[:, :, :16, :16]
    with pytest.raises(ValueError, match="the flow bank is 16x16, the states 32x32"):
        env.reset()
        env.step(policy(task.observe(env.state)).action)
    with pytest.raises(UserError, match="motion must be 'synthetic' or 'real'"):
        style_task(tmp_path, motion="optical").validate()
    with pytest.raises(UserError, match="this model has neither"):       # it would do nothing
        style_task(tmp_path, motion="real")


class _Identity(torch.nn.Module):
    """A 'policy' returning its input image (or a fixed image): temporal-loss references."""

    def __init__(self, fixed=None, identity_calls=None):
        super().__init__()
        self.fixed, self.identity_calls, self.calls = fixed, identity_calls, 0

    def forward(self, obs, sample=True):
        from rl_i2it.core.policy import PolicyOutput
        x = obs["image"] if isinstance(obs, dict) else obs
        self.calls += 1
        identity = self.fixed is None or (self.identity_calls is not None and self.calls <= self.identity_calls)
        return PolicyOutput(None, None, x if identity else self.fixed.expand_as(x))


def test_temporal_loss_is_zero_for_a_motion_equivariant_map(tmp_path):
    task = style_task(tmp_path, temporal_weight=1.0, motion_noise=0.0)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=(32, 32), mode="bilinear")
    state = {"current": x, "style": torch.zeros(2, dtype=torch.long)}
    assert task.temporal_loss(state, _Identity()) < 1e-6
    assert task.temporal_loss(state, _Identity(fixed=x[:1])) > 1e-3       # ignores the motion: penalised
    # steady at the first step (its two calls), not after: only an unrolled loss sees it
    assert task.temporal_loss(state, _Identity(fixed=x[:1], identity_calls=2)) < 1e-6
    task.options.temporal_steps = 3
    assert task.temporal_loss(state, _Identity()) < 1e-6
    torch.manual_seed(1)
    late = task.temporal_loss(state, _Identity(fixed=x[:1], identity_calls=2))
    torch.manual_seed(1)
    every = task.temporal_loss(state, _Identity(fixed=x[:1]))              # the same motion
    assert late > 1e-3 and late.item() == pytest.approx(2 / 3 * every.item())   # 2 of 3 steps unsteady


def test_video_stylize_carries_the_frame_memory(tmp_path):
    from rl_i2it.tasks.style import stylize_video
    frames = torch.rand(3, 3, 32, 36)
    for frame_gru, carried in ((True, True), (False, False)):
        task = style_task(tmp_path, video=True, frame_gru=frame_gru)
        torch.manual_seed(0)
        policy = task.build_policy().eval()
        torch.nn.init.normal_(policy.planner.mix.weight, std=0.1)   # open the memory path (closed at start)
        out, _ = stylize_video(task, policy, frames, 2)
        alone, _ = stylize(task, policy, frames[1:2], 2)
        assert out.shape == frames.shape
        assert (not torch.allclose(out[1], alone[-1][0], atol=1e-6)) == carried
    from rl_i2it.tasks.style import stylize_frames
    for frame, says in ((frames[0].permute(1, 2, 0), r"channels last\? frame.permute\(2, 0, 1\)"),
                        (frames[:1], r"one frame \[3, H, W\]")):
        with pytest.raises(ValueError, match=says):
            next(stylize_frames(task, policy, [frame], 1))
    with pytest.raises(TypeError, match=r"torch.from_numpy\(frame\).permute\(2, 0, 1\)"):
        next(stylize_frames(task, policy, [frames[0].permute(1, 2, 0).numpy()], 1))


def test_video_model_trains_and_resumes(tmp_path):
    over = {"task_options": {"video": True, "frame_steps": 2, "temporal_weight": 1.0, "temporal_steps": 2},
            "train": {"horizon": 4}}
    tr = trainer(tmp_path, 6, **{k: dict(v) for k, v in over.items()})
    tr.train()
    tr2 = trainer(tmp_path, 9, **{k: dict(v) for k, v in over.items()})
    assert tr2.resumed
    tr2.train()
    from rl_i2it.viz import read_metrics
    rows = read_metrics(tmp_path / "run")
    assert rows and "temporal" in rows[-1]


def test_video_scores_are_the_warping_error_and_style_loss_of_a_clip(tmp_path):
    task = style_task(tmp_path)
    frames = torch.from_numpy(moving_frames(4)).permute(0, 3, 1, 2).float() / 255
    style = load_style_image(task.options.style)
    steady = video_scores(task, frames, frames, style)
    flicker = video_scores(task, frames * torch.tensor([1.0, 0.6, 1.0, 0.6]).view(4, 1, 1, 1), frames, style)
    assert steady["warp_error"] < 0.003 and flicker["warp_error"] > 10 * steady["warp_error"]
    assert steady["style"] == pytest.approx(style_losses(task, frames, frames, style)[1].mean().item())


def test_the_objective_is_relu2_2_content_and_the_sum_of_four_grams_on_clamped_images():
    """The paper's evaluation form: content = MSE at relu2_2, style = the sum over the 4 layers of the
    Gram distances, the image clamped to [0, 1] first. (The values are ~1e-8: compared relatively.)"""
    from rl_i2it.features.style import STYLE_LAYERS
    torch.manual_seed(0)
    vgg = VGG16Features(normalize=False, pretrained=False)
    obj = StyleObjective(vgg)
    g = torch.Generator().manual_seed(1)
    x, c, s = (torch.rand(1, 3, 32, 32, generator=g) for _ in range(3))
    grams = obj.style_grams(s)
    content, style = obj(x, obj.content_features(c), grams)
    fx, fc = vgg(x, STYLE_LAYERS), vgg(c, ("relu2_2",))
    torch.testing.assert_close(content, (fx["relu2_2"] - fc["relu2_2"]).square().flatten(1).mean(1), atol=0, rtol=1e-4)
    torch.testing.assert_close(style, sum(gram_distance(fx[n], gg) for n, gg in zip(STYLE_LAYERS, grams)),
                               atol=0, rtol=1e-4)
    y = 3 * x - 1
    torch.testing.assert_close(obj(y, None, grams)[1], obj(y.clamp(0, 1), None, grams)[1], atol=0, rtol=1e-4)


def test_style_losses_score_against_the_style_at_its_own_size(tmp_path):
    task = style_task(tmp_path)
    g = torch.Generator().manual_seed(2)
    images, style = torch.rand(2, 3, 32, 32, generator=g), torch.rand(1, 3, 48, 40, generator=g)
    _, s = style_losses(task, images, images, style)
    obj = task.objective
    torch.testing.assert_close(s, obj(images, None, obj.style_grams(style))[1], atol=0, rtol=1e-4)


def test_planner_residual_block_adds_to_its_input():
    """With the residual branch's last instance norm zeroed, the branch adds nothing: the 1/4
    features the actor gets are those of the three strided convs (without the skip they would be 0)."""
    import torch.nn as nn
    planner = StylePlanner()
    nn.init.zeros_(planner.r2.norm.norm.weight)
    nn.init.zeros_(planner.r2.norm.norm.bias)
    x = torch.rand(2, 3, 32, 40)
    _, _, skips = planner(x)
    with torch.no_grad():
        f3 = planner.c3(planner.c2(planner.c1(x)))
    assert f3.abs().max() > 0
    torch.testing.assert_close(skips[3], f3)


def test_an_images_step_does_not_depend_on_the_rest_of_its_batch():
    """Instance norm: each image is normalised on its own (a batch norm would mix a batch's images)."""
    torch.manual_seed(0)
    task = StyleTask(SMALL, data=content_data(None))
    policy = task.build_policy().train()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        alone, together = policy(x[:1], sample=False).action, policy(x, sample=False).action[:1]
    torch.testing.assert_close(alone, together)
