"""Paired photo translation: environment semantics, pix2pix folders as task data, conditional
PatchGAN, and learning (grey -> colour on synthetic photos)."""
import pytest
import torch
from PIL import Image

from conftest import IMG_SMALL, image_trainer, make_photos
from rl_i2it.errors import UserError
from rl_i2it.ops.metrics import psnr
from rl_i2it.tasks.imagegen import evaluate
from rl_i2it.tasks.translation import TranslationTask


def make_trainer(tmp_path, photo_data, steps=8, **opts):
    return image_trainer("translation", tmp_path, photo_data, steps, **opts)


def test_options_are_checked():
    with pytest.raises(UserError, match="direction"):
        TranslationTask({"direction": "AB"})
    with pytest.raises(UserError, match="data"):
        TranslationTask({"data": "facades"})


def test_env_starts_at_the_source_and_the_action_becomes_the_current(photo_data):
    task = TranslationTask(IMG_SMALL, data=photo_data)
    env = task.make_env(4, torch.Generator().manual_seed(0))
    s = env.reset()
    assert torch.equal(s["current"], s["source"]) and s["source"].shape == (4, 3, 16, 16)
    assert task.observe(s).shape == (4, 6, 16, 16)
    start = env.score.clone()
    a = torch.rand(4, 3, 16, 16)
    _, r1, _, _ = env.step(a)
    assert torch.equal(env.current, a)
    _, r2, _, info = env.step(s["target"])
    assert torch.allclose(info["score"], psnr(s["target"], s["target"]))
    assert torch.allclose(r1 + r2, 0.1 * (info["score"] - start), atol=1e-4)


def test_replay_states_look_up_sources_by_index(tmp_path, photo_data):
    tr = make_trainer(tmp_path, photo_data, steps=2)
    tr.train()
    batch = tr.replay.sample(8, torch.Generator().manual_seed(0))
    src, _ = tr.task.split_data("train")
    obs = tr.task.observe(batch["state"])
    assert torch.allclose(obs[:, :3], src[batch["state"]["index"]].float() / 255)
    assert tr.task.disc.cond_channels == 3 and tr.task.options.disc == "patch"     # pix2pix's D


def write_ab(folder, a, b):
    folder.mkdir(parents=True)
    for i in range(len(a)):
        ab = torch.cat([a[i], b[i]], 2).permute(1, 2, 0).numpy()
        Image.fromarray(ab).save(folder / f"{i:03d}.png")


def test_pix2pix_folders_are_task_data(tmp_path):
    a, b = make_photos(12, 16, 0), make_photos(12, 16, 1)
    write_ab(tmp_path / "set" / "train", a[:8], b[:8])
    write_ab(tmp_path / "set" / "val", a[8:], b[8:])
    task = TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'set'}", "direction": "BtoA"})
    src, tgt = task.split_data("test")
    assert torch.equal(src.cpu(), b[8:]) and torch.equal(tgt.cpu(), a[8:])
    src, _ = task.split_data("train")
    assert len(src) == 7                         # 8 less the held-out validation pair
    for side, imgs in (("A", a), ("B", b)):               # the A/train, A/test, B/... layout
        for sub, part in (("train", imgs[:8]), ("test", imgs[8:])):
            (tmp_path / "nested" / side / sub).mkdir(parents=True)
            for i, img in enumerate(part):
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "nested" / side / sub / f"{i}.png")
    nested = TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'nested'}"})
    assert torch.equal(nested.split_data("test")[1].cpu(), b[8:])
    write_ab(tmp_path / "flat", a, b)             # no split folders: the last 10 % is the test split
    flat = TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'flat'}"})
    assert torch.equal(flat.split_data("test")[0].cpu(), a[-1:])
    for empty in ("pix2pix:", "pix2pix: "):         # no folder: refused, not the working folder read
        with pytest.raises(UserError, match="names no folder"):
            TranslationTask({**IMG_SMALL, "data": empty})
    write_ab(tmp_path / "caps" / "Train", a[:8], b[:8])           # split folders named in any case
    write_ab(tmp_path / "caps" / "Test", a[8:], b[8:])
    caps = TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'caps'}"})
    assert torch.equal(caps.split_data("test")[0].cpu(), a[8:]) and len(caps.split_data("train")[0]) == 7
    write_ab(tmp_path / "emptytest" / "train", a[:8], b[:8])      # an empty test/: val/ is the test split
    (tmp_path / "emptytest" / "test").mkdir()
    write_ab(tmp_path / "emptytest" / "val", a[8:], b[8:])
    assert torch.equal(TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'emptytest'}"})
                       .split_data("test")[0].cpu(), a[8:])
    write_ab(tmp_path / "notest" / "train", a, b)       # refused before training, not at its evaluation
    (tmp_path / "notest" / "test").mkdir()
    with pytest.raises(UserError, match="no test/ or val/ folder with images"):
        TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'notest'}"}).split_data("train")
    for sub, part in (("train", slice(0, 8)), ("test", slice(8, 12))):     # train/A, train/B, test/A ... layout
        for side, imgs in (("A", a), ("B", b)):
            (tmp_path / "splitab" / sub / side).mkdir(parents=True)
            for i, img in enumerate(imgs[part]):
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "splitab" / sub / side / f"{i}.png")
    splitab = TranslationTask({**IMG_SMALL, "data": f"pix2pix:{tmp_path / 'splitab'}"})
    assert torch.equal(splitab.split_data("test")[1].cpu(), b[8:]) and len(splitab.split_data("train")[0]) == 7
    for data in ("edges", "grey"):                      # made pairs have one direction
        with pytest.raises(UserError, match="direction is for pix2pix:PATH data"):
            TranslationTask({**IMG_SMALL, "data": data, "direction": "BtoA"})


def test_short_training_beats_untrained_policy(tmp_path, photo_data):
    # a learnable mapping (the negative -> the photo); grey -> colour is ambiguous on these photos
    negatives = {k: (255 - t, t) for k, (_, t) in photo_data.items()}
    tr = make_trainer(tmp_path, negatives, steps=150)
    before = evaluate(tr.task, tr.policy, steps=(3,), split="valid", features=False)[3]["psnr_full"]
    tr.train()
    after = evaluate(tr.task, tr.policy, steps=(3,), split="valid", features=False)[3]["psnr_full"]
    assert after > before + 3.0, (before, after)


def test_the_ssim_reward_counts_the_whole_image_border_included(photo_data):
    from rl_i2it.ops.metrics import ssim
    task = TranslationTask({**IMG_SMALL, "reward": "ssim"}, data=photo_data)
    target = photo_data["train"][1][:2].float() / 255
    image = target.clone()
    image[..., :3, :] = 1 - image[..., :3, :]                    # wrong only in a 3-pixel frame
    torch.testing.assert_close(task.score(image, target, None), ssim(image, target, torch.ones(1, 1, *target.shape[2:])))
    assert (task.score(image, target, None) < ssim(image, target)).all()   # the standard value leaves most of it out


def test_a_patch_discriminator_too_big_for_the_image_is_a_clear_error(photo_data):
    """Said when the options are checked (before any data loads or episode runs), not at the first update."""
    with pytest.raises(UserError, match="too small for a PatchGAN"):
        TranslationTask({**IMG_SMALL, "disc_widths": [8, 8, 8, 8]}, data=photo_data)
    TranslationTask({**IMG_SMALL, "disc_widths": [8, 8, 8, 8], "gan": "none"}, data=photo_data)   # no GAN: no check
    torch.manual_seed(5)
    drawn = torch.rand(3)
    torch.manual_seed(5)
    TranslationTask(IMG_SMALL, data=photo_data)                  # the check draws no number of the run's stream
    assert torch.equal(torch.rand(3), drawn)
