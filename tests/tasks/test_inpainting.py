"""Face inpainting: environment semantics, replay of image states, every GAN kind, the
discriminator's checkpointing and divergence stop, evaluation, and learning."""
import pytest
import torch

from conftest import IMG_SMALL, faces, image_trainer
from rl_i2it.errors import UserError
from rl_i2it.ops.gan import KINDS
from rl_i2it.ops.metrics import psnr
from rl_i2it.tasks.imagegen import evaluate, image_scores
from rl_i2it.tasks.inpainting import InpaintingTask, square_masks


def make_trainer(tmp_path, photo_data, steps=8, **opts):
    return image_trainer("inpainting", tmp_path, faces(photo_data), steps, **opts)


def test_options_are_checked():
    with pytest.raises(UserError, match="power of two"):
        InpaintingTask({"size": 48})
    with pytest.raises(UserError, match="widths needs 5"):
        InpaintingTask({"size": 128})
    with pytest.raises(UserError, match="gan"):
        InpaintingTask({"gan": "lsgan"})
    with pytest.raises(UserError, match="hole_size"):
        InpaintingTask({"size": 64, "hole_size": 64})
    with pytest.raises(UserError, match="would see the answer"):
        InpaintingTask({"disc_conditional": True})


def test_masks_centre_and_random():
    m = square_masks(3, 16, 8, None, random=False)
    assert m.shape == (3, 1, 16, 16) and m.dtype == torch.bool and (m.sum((1, 2, 3)) == 64).all()
    assert m[0, 0, 4:12, 4:12].all()
    r = square_masks(50, 16, 6, torch.Generator().manual_seed(0), random=True)
    assert (r.sum((1, 2, 3)) == 36).all()
    assert len({tuple(x.nonzero()[0].tolist()) for x in r}) > 5         # different places


def test_env_keeps_known_pixels_and_rewards_psnr_gain(photo_data):
    task = InpaintingTask(IMG_SMALL, data=faces(photo_data))
    env = task.make_env(4, torch.Generator().manual_seed(0))
    s = env.reset()
    mask, target = s["mask"], s["target"]
    assert s["current"].shape == (4, 3, 16, 16) and mask.shape == (4, 1, 16, 16)
    assert torch.equal(s["current"][~mask.expand(-1, 3, -1, -1)], target[~mask.expand(-1, 3, -1, -1)])
    assert (s["current"][mask.expand(-1, 3, -1, -1)] == 0.5).all()        # the hole starts grey
    start = env.score.clone()
    noise = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    _, r1, done, _ = env.step(noise)
    outside = ~mask.expand(-1, 3, -1, -1)
    assert torch.equal(env.current[outside], target[outside]) and not done.any()
    _, r2, _, info = env.step(target)                                      # the truth: perfect hole
    assert torch.allclose(info["score"], psnr(target, target, mask))
    assert torch.allclose(r1 + r2, 0.1 * (info["score"] - start), atol=1e-4)
    env.step(noise)                                          # the score is the hole's PSNR, not the image's
    assert torch.allclose(env.score, psnr(env.current, target, mask))
    assert not torch.allclose(env.score, psnr(env.current, target))
    img, hole = task.generated(env.state, noise)             # what the GAN and TV judge: the completed face
    hole3 = hole.expand(-1, 3, -1, -1)
    assert torch.equal(img[hole3], noise[hole3]) and torch.equal(img[~hole3], env.current[~hole3])
    assert task.observe(env.state).shape == (4, 4, 16, 16)


@pytest.mark.parametrize("kind", KINDS)
def test_every_gan_kind_trains_and_checkpoints_its_discriminator(tmp_path, photo_data, kind):
    tr = make_trainer(tmp_path / kind, photo_data, steps=4, gan=kind)
    tr.train()
    rows = [ln for ln in (tmp_path / kind / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(k in rows[-1] for k in ('"d_loss"', '"g_adv"', '"recon"'))
    saved = torch.load(tmp_path / kind / "checkpoint.pt", weights_only=True)["task"]["disc"]
    resumed = make_trainer(tmp_path / kind, photo_data, steps=4, gan=kind)
    assert resumed.resumed
    for k, v in resumed.task.disc.state_dict().items():
        assert torch.equal(v, saved[k]), k
    if kind == KINDS[0]:           # a fresh run given that task object: its discriminator starts anew
        from rl_i2it.core.trainer import Trainer
        fresh = Trainer(resumed.cfg, tmp_path / "fresh", task=resumed.task, verbose=False)
        assert fresh.task.disc is None and not fresh.task.learner_state()


def test_exploding_discriminator_stops_and_keeps_the_last_good_checkpoint(tmp_path, photo_data, monkeypatch):
    tr = make_trainer(tmp_path, photo_data, steps=4)
    tr.train()
    good = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    tr = make_trainer(tmp_path, photo_data, steps=12)         # resumes, discriminator included
    with torch.no_grad():                       # a discriminator gone mad: scores of 1e7
        tr.task.disc.head[-1].bias.fill_(1e7)
    with pytest.raises(UserError, match="discriminator diverged.*last good checkpoint"):
        tr.train()
    kept = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert kept["counters"] == good["counters"]


def test_evaluate_reports_hole_and_full_metrics(photo_data):
    task = InpaintingTask(IMG_SMALL, data=faces(photo_data))
    policy = task.build_policy()
    res = evaluate(task, policy, steps=(1, 3), features=False)
    assert set(res) == {1, 3}
    assert set(res[3]) == {"psnr_hole", "ssim_hole", "psnr_full", "ssim_full", "sec_per_image"}
    assert res[3]["psnr_full"] > res[3]["psnr_hole"]         # known pixels are exact outside the hole
    assert res[3]["sec_per_image"] > res[1]["sec_per_image"] > 0


def test_evaluate_scores_a_batch_at_a_time_as_on_the_whole_split(photo_data, monkeypatch):
    """eval runs and scores a few images at a time, so memory does not grow with the split, and
    gives the numbers of scoring every prediction at once (LPIPS and FID too, stand-in networks)."""
    import rl_i2it.features as feats
    from rl_i2it.tasks import imagegen
    monkeypatch.setattr(feats, "lpips", lambda a, b: (a - b).abs().mean((1, 2, 3)))
    monkeypatch.setattr(feats, "inception_features",
                        lambda x: torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3)), x[:, :, 4, 4]], 1))
    task = InpaintingTask({**IMG_SMALL, "hole": "random"}, data=faces(photo_data))
    policy = task.build_policy()
    sizes, real_predict = [], imagegen.predict
    monkeypatch.setattr(imagegen, "predict", lambda task, policy, s, g, *a: sizes.append(len(g)) or real_predict(task, policy, s, g, *a))
    batched = evaluate(task, policy, steps=(1, 3), batch=5)
    target = task.split_data("test")[1].float() / 255
    assert sizes == [1, 5, 5, 5, 5, 4] and len(target) == 24          # first: one untimed warm-up image
    images, _ = real_predict(task, policy, None, target, 3, task.eval_mask(24))
    for t in (1, 3):
        whole = image_scores(images[t - 1], target, task.eval_mask(24))
        assert set(whole) == {"psnr_hole", "ssim_hole", "psnr_full", "ssim_full", "lpips", "fid"}
        assert set(batched[t]) == set(whole) | {"sec_per_image"}
        assert all(batched[t][k] == pytest.approx(whole[k], rel=1e-5, abs=1e-6) for k in whole), (batched[t], whole)


def test_without_a_mask_a_random_hole_model_fills_the_centre_hole(photo_data):
    """The model's centre hole is the default of predict (and of `inpaint`), also for a model
    trained on random holes, whose seeded evaluation holes lie elsewhere."""
    from rl_i2it.tasks.imagegen import predict
    task = InpaintingTask({**IMG_SMALL, "hole": "random"}, data=faces(photo_data))
    target = task.split_data("test")[1][:3].float() / 255
    centre = task.centre_mask(1)[0, 0]
    assert centre.sum() == 64 and centre[4:12, 4:12].all()                  # the 8x8 centre of 16x16
    assert not torch.equal(task.eval_mask(3)[:, 0], centre.expand(3, -1, -1))
    out = predict(task, task.build_policy(), None, target, 2)[0][-1]
    changed = (out != target).any(1)
    assert torch.equal(changed, centre.expand(3, -1, -1))


def test_short_training_beats_untrained_policy(tmp_path, photo_data):
    tr = make_trainer(tmp_path, photo_data, steps=150)
    before = evaluate(tr.task, tr.policy, steps=(3,), split="valid", features=False)[3]["psnr_hole"]
    tr.train()
    after = evaluate(tr.task, tr.policy, steps=(3,), split="valid", features=False)[3]["psnr_hole"]
    assert after > before + 2.0, (before, after)          # measured: 15.7 -> 18.7 dB


def test_vector_actor_gives_images_in_unit_range():
    from rl_i2it.nets.encdec import VectorActor, VectorPlanner
    planner, actor = VectorPlanner(3, 16, (8, 16), 32), VectorActor(3, 3, 16, (8, 16), 32)
    with torch.no_grad():
        actor.out.weight.mul_(50)                          # saturate: sigmoid -> 0 or 1, never beyond
    mu, _, skips = planner(torch.rand(4, 3, 16, 16))
    y = actor(torch.tanh(mu), skips)
    assert y.shape == (4, 3, 16, 16) and y.min() >= 0 and y.max() <= 1 and y.min() < 0.05 < 0.95 < y.max()
