"""CUDA: every task trains on the GPU (rollouts, replay, SAC update, auxiliary loss and GAN,
checkpoint, resume), its saved policy runs on the CPU, and the user-facing inference of each task
gives the CPU's numbers on the GPU. Skipped where torch sees no CUDA device (CI has none); on a GPU
machine: ``python -m pytest tests/test_cuda.py``. ``RL_I2IT_TEST_DEVICE`` names the device tested
(default ``cuda``; ``cpu`` runs the same checks against the CPU itself, to test the tests)."""
import json
import math
import os

import pytest
import torch

from conftest import (IMG_SMALL, REG3D_SMALL, REG_SMALL, SMALL, STYLE_SMALL, faces, grey_to_colour, make_anatomy,
                      make_photos, make_shapes, moving_frames, write_style)
from rl_i2it.config import load_config
from rl_i2it.core.trainer import Trainer, load_policy
from rl_i2it.data.mnist import Digits
from rl_i2it.data.pairs import deform_pairs

DEVICE = os.environ.get("RL_I2IT_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="torch sees no CUDA device")


@pytest.fixture(autouse=True)
def _plain_float32():
    """Plain float32 on the GPU (no TF32 convolutions or products): CPU and GPU then agree to
    rounding, so a difference is a bug, not precision."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


# -- one small case of each task: (task, options, make_task(options, device), inference) ----------
def _digits_case():
    from rl_i2it.tasks.digits import DigitsTask, register
    data = Digits(*make_shapes(200, 0), *make_shapes(40, 1))
    test = torch.from_numpy(data.test_x[:4]).float().div(255).unsqueeze(1)

    def infer(task, policy):
        return register(task, policy, test[:2], test[2:4], 3)["steps"]
    return "digits", dict(SMALL, transform="cross"), lambda o, d: DigitsTask(o, d, data=data), infer


def _registration_case(dims: int):
    from rl_i2it.tasks.registration import RegistrationTask, register
    size = 32 if dims == 2 else 16
    imgs, labs = make_anatomy(4, size, dims, seed=0)
    pairs = {"train": deform_pairs(imgs, labs, 16, seed=1, magnitude=2.5 if dims == 2 else 0.8),
             "test": deform_pairs(imgs, labs, 4, seed=2, magnitude=2.5 if dims == 2 else 0.8)}
    opts = dict(REG_SMALL, force=True) if dims == 2 else dict(REG3D_SMALL)
    t = pairs["test"]

    def infer(task, policy):
        out = register(task, policy, t.fixed.float().div(255), t.moving.float().div(255), 3, adaptive=True)
        return [out["warped"].cpu(), out["field"].cpu()]
    return "registration", opts, lambda o, d: RegistrationTask(o, d, pairs=pairs), infer


def _image_case(name: str):
    from rl_i2it.tasks import task_class
    data = grey_to_colour((("train", 32, 0), ("valid", 4, 1), ("test", 4, 2)))
    if name == "inpainting":
        data = faces(data)
    src, tgt = (x.float().div(255) for x in data["test"])

    def infer(task, policy):
        from rl_i2it.tasks.imagegen import predict
        return predict(task, policy, src, tgt if name == "inpainting" else None, 3)[0]
    return name, dict(IMG_SMALL), lambda o, d: task_class(name)(o, d, data=data), infer


def _style_case(kind: str, tmp_path):
    from rl_i2it.tasks.style import StyleTask, stylize, stylize_video
    style = write_style(tmp_path / "style.png")
    opts = {**STYLE_SMALL, "n_content": 16, "style": style}
    if kind == "video":
        opts.update(video=True, frame_steps=2, temporal_weight=1.0)
    if kind == "arbitrary":
        (tmp_path / "styles").mkdir()
        for i in range(3):
            write_style(tmp_path / "styles" / f"s{i}.png", seed=i)
        opts.update(arbitrary=True, styles=str(tmp_path / "styles"), n_styles=3)
    data = {"train": make_photos(16, 32, 0), "test": make_photos(2, 32, 1)}
    content = torch.rand(2, 3, 21, 30, generator=torch.Generator().manual_seed(0))
    other = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(1))     # a style not in training

    def infer(task, policy):
        if kind == "video":
            return [stylize_video(task, policy, content, 2)[0]]
        return stylize(task, policy, content, 3, style_image=other if kind == "arbitrary" else None)[0]
    return "style", opts, lambda o, d: StyleTask(o, d, data=data), infer


CASES = ["digits", "registration-2d", "registration-3d", "inpainting", "translation",
         "style", "style-video", "style-arbitrary"]


def make_case(name: str, tmp_path):
    if name == "digits":
        return _digits_case()
    if name.startswith("registration"):
        return _registration_case(int(name[-2]))
    if name.startswith("style"):
        return _style_case(name.partition("-")[2], tmp_path)
    return _image_case(name)


def config(task: str, opts: dict, steps: int):
    return load_config(None, {"task": task, "device": DEVICE, "task_options": opts,
                              "train": {"steps": steps, "n_envs": 4, "horizon": 3, "learning_starts": 8,
                                        "replay_size": 64, "checkpoint_every_s": 0, "log_every": 2},
                              "sac": {"batch_size": 4, "rl_warmup": 0, "log_std_max": -2.0}})


def on(module: torch.nn.Module) -> set[str]:
    return {p.device.type for p in module.parameters()}


@pytest.mark.parametrize("name", CASES)
def test_trains_on_the_device_resumes_and_runs_on_the_cpu_with_the_same_numbers(tmp_path, name):
    task_name, opts, make_task, infer = make_case(name, tmp_path)
    dev = torch.device(DEVICE).type
    run = tmp_path / "run"
    tr = Trainer(config(task_name, opts, 4), run, task=make_task(opts, DEVICE), verbose=False)
    assert on(tr.policy) == {dev} and on(tr.sac.critic) == {dev} and tr.sac.log_alpha.device.type == dev
    tr.train()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))
    assert {"critic_loss", "aux_loss"} <= set(rows[-1]), rows[-1]
    # the checkpoint (with the device's RNG state) resumes on the device and trains on
    again = Trainer(config(task_name, opts, 8), run, task=make_task(opts, DEVICE), verbose=False)
    assert again.resumed and again.counters["updates"] == tr.counters["updates"]
    again.train()
    assert again.counters["updates"] >= 8
    # the saved policy loads on either device; the task's inference gives the same numbers
    _, cpu_policy, _ = load_policy(run / "policy.pt", "cpu")
    _, dev_policy, _ = load_policy(run / "policy.pt", DEVICE)
    assert on(cpu_policy) == {"cpu"} and on(dev_policy) == {dev}
    torch.manual_seed(0)
    ref = infer(make_task(opts, "cpu"), cpu_policy)
    torch.manual_seed(0)
    got = infer(make_task(opts, DEVICE), dev_policy)
    assert len(ref) == len(got) and len(ref) >= 1
    for r, g in zip(ref, got):
        assert g.device.type == "cpu" and g.shape == r.shape and torch.isfinite(g).all()
        torch.testing.assert_close(g, r, atol=2e-4, rtol=1e-3)


# -- the numerical ops on their own, forward and gradient ------------------------------------------
def _ops():
    from rl_i2it.features.vgg import VGG16Features
    from rl_i2it.ops import losses, metrics
    from rl_i2it.ops.warp import warp
    vgg = {}

    def vgg_feats(x):
        key = x.device.type
        if key not in vgg:
            torch.manual_seed(0)
            vgg[key] = VGG16Features(pretrained=False).to(x.device)
        return sum(f.square().mean() for f in vgg[key](x).values())
    return {
        "warp 2D": (lambda x, u: warp(x, u).square().sum(), [(2, 1, 24, 24), (2, 2, 24, 24)]),
        "warp 3D": (lambda x, u: warp(x, u).square().sum(), [(1, 1, 12, 12, 12), (1, 3, 12, 12, 12)]),
        "local NCC 2D": (lambda a, b: losses.local_ncc(a, b, 9).mean(), [(2, 1, 24, 24), (2, 1, 24, 24)]),
        "local NCC 3D": (lambda a, b: losses.local_ncc(a, b, 5).mean(), [(1, 1, 12, 12, 12), (1, 1, 12, 12, 12)]),
        "gram distance": (lambda f, g: losses.gram_distance(f, losses.gram(g)).sum(), [(2, 4, 8, 8), (2, 4, 8, 8)]),
        "SSIM": (lambda a, b: metrics.ssim(a, b).sum(), [(2, 3, 24, 24), (2, 3, 24, 24)]),
        "VGG16 features": (lambda x: vgg_feats(x), [(1, 3, 32, 32)]),
    }


@pytest.mark.parametrize("name", list(_ops()))
def test_ops_give_the_cpus_values_and_gradients(name):
    fn, shapes = _ops()[name]
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand(s, generator=g) for s in shapes]
    if name.startswith("warp"):
        xs[1] = (xs[1] - 0.5) * 4                         # displacements of up to 2 px
    cpu = [x.clone().requires_grad_() for x in xs]
    dev = [x.to(DEVICE).requires_grad_() for x in xs]
    ref, got = fn(*cpu), fn(*dev)
    assert got.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(got.cpu(), ref.detach(), atol=1e-5, rtol=1e-4)
    ref.backward()
    got.backward()
    for c, d in zip(cpu, dev):
        torch.testing.assert_close(d.grad.cpu(), c.grad, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("nd, size", [(2, 48), (3, 20)])
def test_affine_pre_alignment_finds_the_cpus_map_on_the_device(nd, size):
    """``register --affine``'s fit (Adam through ``affine_grid`` and ``grid_sample``) on the device
    lands where it does on the CPU: the two fields within 0.05 voxel."""
    from conftest import inverse_affine, known_affine
    from rl_i2it.ops.affine import affine_field, fit_affine
    from rl_i2it.ops.warp import warp
    imgs, _ = make_anatomy(1, size, nd, seed=3)
    moving = warp(imgs, affine_field(inverse_affine(known_affine(nd, size)), (size,) * nd))
    ref = affine_field(fit_affine(imgs, moving)[0], (size,) * nd)
    got = fit_affine(imgs.to(DEVICE), moving.to(DEVICE))
    assert all(x.device.type == torch.device(DEVICE).type for x in got)
    assert (affine_field(got[0].cpu(), (size,) * nd) - ref).abs().max() < 0.05


@pytest.mark.parametrize("name", ["inpainting", "translation"])
def test_a_split_without_room_on_the_gpu_trains_from_cpu_memory(tmp_path, name, monkeypatch):
    """A training split over ``DEVICE_SHARE`` of the GPU's free memory stays in CPU memory;
    episodes and replay batches take their rows from it, and the run trains as it does on the GPU."""
    from rl_i2it.tasks import imagegen
    monkeypatch.setattr(imagegen, "DEVICE_SHARE", 0.0)          # no split fits
    task_name, opts, make_task, _ = make_case(name, tmp_path)
    tr = Trainer(config(task_name, opts, 6), tmp_path / "run", task=make_task(opts, DEVICE), verbose=False)
    src, tgt = tr.task.split_data("train")
    assert src.device.type == tgt.device.type == "cpu"
    assert (src is tgt) == (name == "inpainting")              # inpainting's one set, not two copies
    tr.train()
    assert tr.counters["updates"] >= 6 and on(tr.policy) == {torch.device(DEVICE).type}
    batch = tr.replay.sample(4, torch.Generator().manual_seed(0))
    target = tr.task.target_of(batch["state"])
    assert target.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(target.cpu(), tgt[batch["state"]["index"].cpu()].float() / 255)


@pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="paths only a GPU takes")
def test_gpu_device_rng_replay_limit_and_style_paths():
    """A bare ``cuda`` resolves to the index its tensors report (a cache keyed by device hits); the
    checkpoint's CUDA random state is the training GPU's alone (an older list of every GPU's is
    ignored, not an IndexError on a machine with fewer); a replay over the GPU's free memory is
    refused before allocation; the test VGG's seeding leaves the GPU's stream alone; the video
    scores take GPU tensors."""
    from rl_i2it.core import checkpoint as ckpt
    from rl_i2it.core.buffer import Field, ReplayBuffer
    from rl_i2it.core.trainer import resolve_device
    from rl_i2it.errors import UserError
    from rl_i2it.tasks.style import StyleTask, video_scores
    dev = resolve_device("cuda")
    assert dev.index is not None and torch.zeros(1, device=dev).device == dev
    torch.cuda.manual_seed(3)
    state = ckpt.rng_state(dev)
    drawn = torch.rand(4, device=dev)
    state["cuda"] = torch.cuda.get_rng_state_all() * 2        # as an older version saved it, for more GPUs
    ckpt.set_rng_state(state, dev)
    assert torch.equal(torch.rand(4, device=dev), drawn)
    rows = torch.cuda.mem_get_info(dev)[0] // 2 ** 20 + 2      # 1 MiB rows: more than the free memory
    with pytest.raises(UserError, match=f"free on {dev}"):
        ReplayBuffer(int(rows), {"x": Field((1, 1024, 1024), "uint8")}, Field((1,), "float16"), dev, 0.6, False)
    torch.cuda.manual_seed(7)
    before = torch.cuda.get_rng_state(dev)
    task = StyleTask(STYLE_SMALL, device=dev)
    task.objective
    assert torch.equal(torch.cuda.get_rng_state(dev), before)
    frames = torch.from_numpy(moving_frames(3, 32, 32)).permute(0, 3, 1, 2).float() / 255
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    on_gpu = video_scores(task, frames.to(dev), frames.to(dev), style.to(dev))
    on_cpu = video_scores(task, frames, frames, style)
    assert math.isfinite(on_cpu["warp_error"]) and on_gpu["warp_error"] == pytest.approx(on_cpu["warp_error"], abs=1e-6)
