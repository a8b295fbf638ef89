"""The library's inference functions given what notebook users give them: uint8 images and masks
work as their float / bool forms; 0-255 floats, numpy arrays, a missing batch axis, channels
last, another size than the model's, steps < 1: a TypeError / ValueError naming the argument,
never a traceback from inside torch or a silently wrong result."""
import numpy as np
import pytest
import torch

from conftest import IMG_SMALL, REG_SMALL, STYLE_SMALL, faces, make_photos, moving_frames, write_style
from rl_i2it.config import load_config
from rl_i2it.data.images import as_unit_images
from rl_i2it.errors import UserError


def test_as_unit_images_reads_uint8_and_refuses_what_would_pass_for_white():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 8, generator=g)
    u8 = (x * 255).round().byte()
    assert torch.equal(as_unit_images(u8, "x", 3), u8.float() / 255)
    assert torch.equal(as_unit_images(x.double(), "x", 3), x)
    grey = as_unit_images(x[:, :1], "x", 3)                              # a grey photo for a colour model
    assert grey.shape == (2, 3, 8, 8) and torch.equal(grey[:, 2], x[:, 0])
    over = x * 1.2 - 0.1                                                 # bicubic overshoot: clamped
    assert torch.equal(as_unit_images(over, "x", 3), over.clamp(0, 1))
    assert not as_unit_images(x.requires_grad_(), "x", 3).requires_grad
    assert as_unit_images(x, "x", 3).data_ptr() == x.data_ptr()          # in [0, 1] already: no copy
    cases = [(x.detach() * 255, ValueError, "divide by 255"), (x.detach().numpy(), TypeError, "torch.from_numpy"),
             (x.detach() * 2 - 1, ValueError, r"\[-1, 1\] ones: give \(x \+ 1\) / 2"),    # were clamped: dark half lost
             (x.detach() * 1.45, ValueError, "clamp them, or rescale"),
             (x.detach()[0], ValueError, "add the batch axis"), (x.detach().permute(0, 2, 3, 1), ValueError, "channels last"),
             (x.detach()[:, :2], ValueError, "2 channels"), (x.detach()[:0], ValueError, "no image"),
             (torch.full((1, 3, 8, 8), float("nan")), ValueError, "holds NaN or infinite values"),
             (torch.ones(1, 3, 8, 8, dtype=torch.int32), TypeError, "dtype")]
    for bad, error, words in cases:
        with pytest.raises(error, match=words):
            as_unit_images(bad, "content", 3)
    with pytest.raises(ValueError, match="content is 8x8: this model takes 16x16"):
        as_unit_images(x.detach(), "content", 3, 16)


def test_digits_register_takes_uint8_and_refuses_0_255_floats(digits):
    from rl_i2it.tasks.digits import DigitsTask, register
    from conftest import SMALL
    task = DigitsTask(SMALL, data=digits)
    policy = task.build_policy()
    x = torch.from_numpy(digits.test_x[:4])[:, None]                    # uint8 0-255, as MNIST stores them
    a = register(task, policy, x, x.flip(0), 2)
    b = register(task, policy, x.float() / 255, x.flip(0).float() / 255, 2)
    assert torch.equal(a["field"], b["field"]) and torch.equal(a["dice"], b["dice"])
    with pytest.raises(ValueError, match="divide by 255"):
        register(task, policy, x.float(), x.float(), 2)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        register(task, policy, x, x, 0)
    assert torch.equal(register(task, policy, x, x, np.int64(2))["field"], register(task, policy, x, x, 2)["field"])
    with pytest.raises(ValueError, match="give pairs"):
        register(task, policy, x, x[:3], 1)
    from rl_i2it.tasks.digits import evaluate
    for bad in ((0,), (2.7,), (-1,), ()):                        # 0 merged with identity, 2.7 cut to 2 before
        with pytest.raises(ValueError, match="steps must be an int >= 1|at least one step count"):
            evaluate(task, policy, steps=bad, n_moving=2)
    assert set(evaluate(task, policy, steps=2, n_moving=2)["dice"]) == {0, 2}     # one step count, as imagegen's


def test_predict_takes_masks_as_users_have_them(photo_data):
    """A 0/255 uint8 mask (a mask PNG read as it is) fills as the bool mask does (it halved the
    hole PSNR before: the network saw 255 in its mask channel); one [S, S] mask serves any
    number of images past the batch size; no target, another size: said."""
    from rl_i2it.tasks.imagegen import predict
    from rl_i2it.tasks.inpainting import InpaintingTask
    data = faces(photo_data)
    task = InpaintingTask(IMG_SMALL, data=data)
    policy = task.build_policy()
    imgs = data["test"][1][:6].float() / 255
    hole = task.eval_mask(1)[0, 0]                                        # [S, S] bool
    ref, _ = predict(task, policy, None, imgs, 2, hole, batch=4)
    for mask in (hole.byte() * 255, hole.float(), hole[None], hole[None, None].expand(6, 1, -1, -1)):
        out, _ = predict(task, policy, None, (imgs * 255).round().byte(), 2, mask, batch=4)
        assert torch.allclose(out[-1], ref[-1], atol=1e-6)
    assert torch.equal(ref[-1][:, :, ~hole], imgs[:, :, ~hole])            # known pixels kept
    with pytest.raises(ValueError, match="give target"):
        predict(task, policy, imgs, None, 1, hole)
    with pytest.raises(ValueError, match="mask of shape"):
        predict(task, policy, None, imgs, 1, hole[None].expand(3, -1, -1))
    with pytest.raises(ValueError, match="this model takes 16x16"):
        predict(task, policy, None, torch.rand(2, 3, 32, 32), 1)
    full = hole[None].repeat(6, 1, 1)
    full[4] = True                                                         # one image all hole: nothing to fill from
    with pytest.raises(ValueError, match="covers the whole image"):
        predict(task, policy, None, imgs, 1, full)
    none = hole[None].repeat(6, 1, 1)
    none[2] = False                                                        # one image without a hole: said up front
    with pytest.raises(ValueError, match="mask marks no pixel of image 2 "):
        predict(task, policy, None, imgs, 1, none, batch=1)
    from rl_i2it.tasks.translation import TranslationTask
    tr = TranslationTask(IMG_SMALL, data=data)
    with pytest.raises(ValueError, match="mask is for inpainting"):                # ignored before
        predict(tr, tr.build_policy(), imgs, None, 1, hole)
    with pytest.raises(ValueError, match="batch must be an int >= 1, got 0"):     # "range() arg 3" before
        predict(task, policy, None, imgs, 1, batch=0)
    assert torch.equal(predict(task, policy, None, imgs, 1, batch=np.int64(4))[0][0], ref[0])
    from rl_i2it.tasks.imagegen import evaluate
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        evaluate(task, policy, steps=(0, 5), split="valid", features=False, n=2)
    assert set(evaluate(task, policy, steps=2, split="valid", features=False, n=2)) == {2}
    assert set(evaluate(task, policy, steps=np.arange(1, 3), split="valid", features=False, n=2)) == {1, 2}
    for n in (-3, 10_000):                                       # the last 3 dropped, all taken: silently before
        with pytest.raises(ValueError, match="n: give 0 \\(all\\) to"):
            evaluate(task, policy, steps=1, split="valid", features=False, n=n)
    from rl_i2it.tasks import imagegen
    assert hasattr(imagegen.predict, "__wrapped__")                       # runs under no_grad


def test_registration_register_refuses_another_size(reg_pairs):
    from rl_i2it.tasks.registration import RegistrationTask, register
    task = RegistrationTask(REG_SMALL, pairs=reg_pairs)
    policy = task.build_policy()
    pairs = reg_pairs["test"]
    out = register(task, policy, pairs.fixed[:2], pairs.moving[:2], 2)                 # uint8, as stored
    floats = register(task, policy, pairs.fixed[:2].float() / 255, pairs.moving[:2].float() / 255, 2)
    assert torch.equal(out["field"], floats["field"])
    with pytest.raises(ValueError, match="this model takes 32x32"):
        register(task, policy, torch.rand(1, 1, 40, 40), torch.rand(1, 1, 40, 40))
    for keep in ((10,), (0,)):                                             # counts the rollout never reaches
        with pytest.raises(ValueError, match="keep holds step counts from 1 to steps = 5"):
            register(task, policy, pairs.fixed[:2], pairs.moving[:2], 5, keep=keep)
    assert policy.training                                                 # put back as it was


def test_style_functions_check_their_images(tmp_path):
    from rl_i2it.data.style import read_clip
    from rl_i2it.tasks.style import StyleTask, load_style_image, style_losses, stylize, stylize_video, video_scores
    style_path = write_style(tmp_path / "style.png")
    task = StyleTask({**STYLE_SMALL, "style": style_path, "n_content": 8},
                     data={"train": make_photos(8, 32, 0), "test": make_photos(4, 32, 1)})
    policy = task.build_policy()
    content = make_photos(2, 32, 2).float() / 255
    style = load_style_image(style_path)
    ref, _ = stylize(task, policy, content, 2)
    out, _ = stylize(task, policy, (content * 255).round().byte(), 2)
    assert torch.allclose(out[-1], ref[-1], atol=1e-5)
    grey, _ = stylize(task, policy, content[:, :1], 1)                     # a grey photo: three equal channels
    assert grey[0].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="at least 16 pixels"):
        stylize(task, policy, torch.rand(1, 3, 3, 3), 1)
    with pytest.raises(ValueError, match="one-style model stylises with its own style"):   # ignored before
        stylize(task, policy, content, 1, style)
    with pytest.raises(ValueError, match="style_image holds values"):
        style_losses(task, ref[-1], content, style * 255)
    with pytest.raises(ValueError, match="give one"):
        style_losses(task, ref[-1], content, style.expand(2, -1, -1, -1))
    frames = torch.from_numpy(moving_frames(4, 32, 32)).permute(0, 3, 1, 2).float() / 255
    over = frames * 1.1 - 0.05                                             # bicubic overshoot, as resizing leaves
    outs, _ = stylize_video(task, policy, frames, 1)
    assert video_scores(task, outs, over, style) == video_scores(task, outs, over.clamp(0, 1), style)
    video_scores(task, outs.requires_grad_(), frames, style)               # a tensor with a graph: fine
    with pytest.raises(ValueError, match="no frame"):
        stylize_video(task, policy, frames[:0], 1)
    with pytest.raises(ValueError, match="n >= 1"):
        read_clip(tmp_path / "clip", n=0)


def test_load_config_refuses_what_would_fail_later():
    with pytest.raises(UserError, match="train.steps"):
        load_config(None, {"train": {"steps": float("inf")}})
    with pytest.raises(UserError, match="learning_starts"):
        load_config(None, {"train": {"learning_starts": -1}})
    with pytest.raises(TypeError, match="overrides must be a dict"):
        load_config(None, ["sac.gamma=0.9"])
    with pytest.raises(UserError, match="unknown config key task_options.transfrom"):   # only Trainer said it
        load_config(None, {"task_options": {"transfrom": "random"}})
    with pytest.raises(UserError, match="task_options.size must be a multiple of 4"):
        load_config(None, {"task": "style", "task_options": {"size": 30}})


def test_the_package_lists_its_entry_points():
    """`dir(rl_i2it)` (tab completion) shows the lazily imported names, and each one resolves."""
    import rl_i2it
    assert {"load_config", "Trainer", "train_run", "load_policy", "UserError"} <= set(dir(rl_i2it))
    assert all(callable(getattr(rl_i2it, name)) for name in rl_i2it.__all__)
