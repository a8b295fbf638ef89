"""Neural style transfer, step by step (paper section 4.4), and one model for any style.

State = the current image, starting at the content; plan = a 2D Gaussian map at 1/4 of the
image's side; action = the next image (``nets/stylenet``: fully convolutional, any size);
reward = ``reward_scale`` x the step's decrease of ``style_weight`` x the style loss; auxiliary
loss = ``content_weight`` x content (relu2_2 MSE against the content) + ``style_weight`` x style
(Gram MSE over four VGG16 layers) + ``tv_weight`` x total variation (``features/style``).

Content: random crops of the photos and video frames we reach (``data/style``) or of a user's
folder (``content = PATH``): ``n_content`` crops of ``size`` px are drawn once (the train split
from the left 75 % of each picture, the test split from the right 25 %).

Style: one image (``style``: a path, or ``starry_night`` for opencv-doc's), or, with
``arbitrary``, a bank of style images (``styles``: ``made`` for the painted textures of
``data/style.made_style``, ``photos`` for crops of the stills, ``made+photos``, or a folder);
the arbitrary model observes ``(image, style code)`` with the code the style's VGG statistics,
so any style image works at inference.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.buffer import Field
from ..core.policy import MetaPolicy
from ..data.images import as_unit_frame, as_unit_images, as_unit_pairs
from ..data.style import DEMO_STYLE
from ..errors import UserError
from ..nets.profile import sync
from ..nets.stylenet import StyleActor, StyleCritic, StylePlanner
from ..ops.losses import total_variation
from .base import Task
from .imagegen import ImageEnv

HELD_OUT_SEED = 10000
"""Made styles of seeds >= this are never in a training bank (the unseen-style evaluation)."""
VALID_SEED = 5000
"""Made styles of seeds ``VALID_SEED``.. are the validation textures (``bench/style_valid.py``):
never in a training bank either, so a bank of made styles holds at most this many."""


@dataclass
class StyleOptions:
    size: int = 128
    """Side of the training crops (a multiple of 4; the paper's 256 costs 4x more per update)."""
    style: str = DEMO_STYLE
    """The style image: a path, or 'starry_night' (opencv-doc's, `rl-i2it data fetch style`)."""
    style_size: int = 0
    """Resize the style image to this longer side first (0 = its own size, as the evaluation)."""
    arbitrary: bool = False
    """One model for any style: conditioned on the style's VGG statistics, trained on `styles`."""
    styles: str = "made"
    """Arbitrary model's training styles: 'made' (painted textures drawn here), 'photos' (crops of
    the stills), 'made+photos' (both; the arbitrary preset) or a folder."""
    n_styles: int = 64
    """Styles of each source in the arbitrary model's bank ('made': seeds 0 .. n_styles - 1;
    'photos': n_styles crops; a folder: its first n_styles images)."""
    content: str = "photos"
    """'photos' (opencv-doc and scikit-learn stills + frames of two opencv-doc videos) or a folder
    of images and videos."""
    n_content: int = 2048
    """Content crops drawn once for training (and n_content / 8 for the test split)."""
    widths: tuple = (16, 32, 64)
    """Planner channels: the 9x9 conv and the two stride-2 convs (actor mirrors them)."""
    plan_channels: int = 1
    """Channels of the plan map (at 1/4 of the image's side)."""
    residual: bool = False
    """The actor changes the current image (in logit space) instead of drawing a new one (worse:
    repeated steps compound the change and darken the image, see README)."""
    critic_widths: tuple = (32, 64, 64)
    """Channels of the critic's 7 convs (2, 2, 3 of them)."""
    content_weight: float = 1.0
    """Weight of the content loss in the auxiliary loss."""
    style_weight: float = 1e5
    """Weight of the style loss (auxiliary loss and reward)."""
    tv_weight: float = 1e-7
    """Weight of the total variation (a sum over pixels)."""
    reward_scale: float = 1.0
    """reward = reward_scale x (style_weight x style loss before - after the step)."""
    vgg: str = "pretrained"
    """Loss network: 'pretrained' (ImageNet VGG16) or 'random' (seeded, untrained: tests only)."""
    video: bool = False
    """Video model (paper 4.5): GRU memory in the planner; training episodes are synthetic clips
    (a crop, then the crop moved by `synthetic_motion` every `frame_steps` steps)."""
    step_gru: bool = True
    """Video: the step-wise GRU (memory between the steps of a frame)."""
    frame_gru: bool = True
    """Video: the frame-wise GRU (memory between frames)."""
    memory_channels: int = 16
    """Video: channels of each GRU's state (a multiple of 8), at 1/4 of the image's side."""
    frame_steps: int = 4
    """Video: steps per frame of a training clip (train.horizon / frame_steps frames per clip)."""
    temporal_weight: float = 0.0
    """Compound temporal regularisation: weight of the L1 between the output on a moved (and
    noisy) input and the moved output (ReReVST's; any model, the video preset uses it)."""
    temporal_steps: int = 1
    """Compound temporal regularisation over this many deterministic steps from both states
    (the mean of each step's L1): inference runs T steps per frame, so their differences compound."""
    motion: str = "synthetic"
    """Motion of the training clips and of the temporal term: 'synthetic' (a global shift plus a
    smooth random field) or 'real' (the same shift plus the optical flow of a real frame pair of
    the training videos, cut as the crops are: `data.style.video_flows`; motion boundaries and
    local movers, as in real video)."""
    n_flows: int = 1024
    """motion = 'real': flows in the bank (float16, 2 x size x size each)."""
    motion_pixels: float = 4.0
    """Synthetic motion: largest global shift (pixels); the smooth random part is half of it."""
    motion_noise: float = 0.02
    """Synthetic motion: std of the Gaussian noise added to the moved frame."""


MIN_SIDE = 16
"""The smallest side of an image the style nets and VGG16's four poolings take."""


def check_side(img: torch.Tensor, what: str) -> torch.Tensor:
    """``img [..., H, W]`` unchanged, or a ``UserError`` when a side is under ``MIN_SIDE``."""
    if min(img.shape[-2:]) < MIN_SIDE:
        raise UserError(f"{what} is {img.shape[-1]}x{img.shape[-2]}: it needs at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return img


def load_style_image(spec: str, size: int = 0) -> torch.Tensor:
    """``[1, 3, H, W]`` in [0, 1]: a path or ``starry_night``; ``size`` > 0 resizes the longer side. A grey
    picture (a pencil drawing, say) is a style too: its three channels equal, as a grey content's are."""
    from ..data.images import read_image, resize_longer
    from ..data.style import style_file
    path = style_file() if spec == DEMO_STYLE else spec
    img = read_image(path, "RGB")[None]
    if size:
        img = resize_longer(img, size, min_side=MIN_SIDE)
    return check_side(img, f"style image {spec}")


class StyleEnv(ImageEnv):
    """Episodes on content images; for a video model's training (``reset``) the episode is a
    synthetic clip: every ``frame_steps`` steps the frame moves (``next_frame``), the current
    image becomes the moved frame, the step memory is cleared and the frame memory kept."""

    clips = False

    def reset(self) -> dict:
        bank = self.task.content_bank(self.split)
        idx = torch.randint(0, len(bank), (self.n,), generator=self.gen).to(bank.device)
        style = torch.randint(0, self.task.n_styles, (self.n,), generator=self.gen).to(bank.device)
        self.clips = self.task.options.video
        return self.start(bank[idx].float() / 255, index=idx, style=style, scored=self.task.rewards_used)

    def apply(self, action: torch.Tensor) -> torch.Tensor:
        nxt = self.task.next_state({}, action)
        if "memory" in nxt:
            self.memory = nxt["memory"]
        return nxt["current"]

    def step(self, action: torch.Tensor):
        state, reward, done, info = super().step(action)
        self.frame_step += 1
        if self.clips and self.frame_step == self.task.options.frame_steps:
            self.next_frame()
            state = self.state
        return state, reward, done, info

    def next_frame(self) -> None:
        from ..ops.temporal import warp_image
        o = self.task.options
        flow = self.task.motion_flow(self.content.shape, self.gen, self.content.device)
        noise = torch.randn(self.content.shape, generator=self.gen).to(self.content.device) * o.motion_noise
        self.content = (warp_image(self.content, flow) + noise).clamp(0, 1)
        self.current = self.content
        self.memory = self.task.frame_memory(self.memory)
        self.frame_step = 0
        self.score = self.measure()

    def start(self, content: torch.Tensor, index=None, style: torch.Tensor | None = None,
              style_image: torch.Tensor | None = None, scored: bool = True,
              memory: torch.Tensor | None = None, style_code: torch.Tensor | None = None) -> dict:
        """Begin on ``content [n, 3, H, W]`` in [0, 1] with the bank's styles ``style [n]`` (default
        0) or a user's ``style_image [1, 3, h, w]``. ``scored=False``: no style loss is measured
        (plain inference: a one-style model then needs neither VGG nor its style image). A video
        model starts from ``memory`` (the previous frame's, see ``frame_memory``) or zeros. An
        arbitrary model's ``style_code`` of ``style_image`` may be given, measured once for many
        starts (a video's frames)."""
        task, dev = self.task, self.task.device
        self.content = content.to(dev)
        self.n = content.shape[0]
        self.frame_step = 0
        self.memory = None
        if task.options.video:
            h, w = content.shape[2:]
            m = 2 * task.options.memory_channels
            self.memory = memory.to(dev) if memory is not None else torch.zeros(self.n, m, h // 4, w // 4, device=dev)
        self.style = (style if style is not None else torch.zeros(self.n, dtype=torch.long)).to(dev)
        self.style_image = None if style_image is None else style_image.to(dev)
        self.scored, self._grams, self.code = scored, None, None
        if task.options.arbitrary:
            if style_image is not None and style_code is None:
                style_code = task.objective.style_code(self.style_image)
            self.code = task.code_of(self.style) if style_image is None else style_code.expand(self.n, -1)
        return self.begin(self.content, index)

    @property
    def grams(self) -> list[torch.Tensor]:
        if self._grams is None:
            self._grams = (self.task.grams_of(self.style) if self.style_image is None
                           else self.task.objective.style_grams(self.style_image))
        return self._grams

    @torch.no_grad()
    def measure(self) -> torch.Tensor:
        """``-style_weight x style loss`` of the current image (a reward of its decrease)."""
        if not self.scored:
            return torch.full((self.n,), float("nan"), device=self.current.device)
        return -self.task.options.style_weight * self.task.objective(self.current, None, self.grams)[1]

    @property
    def state(self) -> dict:
        st = {"index": self.index, "style": self.style, "current": self.current, "content": self.content}
        if self.code is not None:
            st["code"] = self.code
        if self.memory is not None:
            st["memory"] = self.memory
        return st


class StyleTask(Task):
    name = "style"
    Options = StyleOptions

    def __init__(self, options=None, device="cpu", data: dict | None = None):
        super().__init__(options, device)
        self._data = dict(data or {})
        self._on_device: dict = {}
        self._objective = None
        self._bank = None
        self._bank_digest = torch.zeros(0, dtype=torch.uint8)    # sha1 of the arbitrary bank's style images
        self._flows = None

    def validate(self) -> None:
        o = self.options
        if o.size < 16 or o.size % 4:
            raise UserError(f"task_options.size must be a multiple of 4 and >= 16, got {o.size}")
        if len(o.widths) != 3 or min(o.widths) < 1:
            raise UserError("task_options.widths needs 3 positive entries")
        if len(o.critic_widths) != 3 or min(o.critic_widths) < 1:
            raise UserError("task_options.critic_widths needs 3 positive entries")
        if o.plan_channels < 1 or o.n_content < 1 or o.n_styles < 1:
            raise UserError("task_options.plan_channels, n_content and n_styles must be >= 1")
        if o.arbitrary and "made" in str(o.styles).split("+") and o.n_styles > VALID_SEED:
            raise UserError(f"task_options.n_styles {o.n_styles} of made styles would train on the validation "
                            f"textures (seeds {VALID_SEED}-{VALID_SEED + 2}) and past {HELD_OUT_SEED} on the "
                            f"benchmark's unseen ones: at most {VALID_SEED}")
        if o.vgg not in ("pretrained", "random"):
            raise UserError("task_options.vgg must be 'pretrained' or 'random'")
        if min(o.content_weight, o.style_weight, o.tv_weight, o.temporal_weight) < 0:
            raise UserError("task_options weights must be >= 0")
        if o.video and (o.memory_channels < 8 or o.memory_channels % 8):
            raise UserError("task_options.memory_channels must be a positive multiple of 8")
        if o.video and not (o.step_gru or o.frame_gru):
            raise UserError("a video model needs step_gru or frame_gru (else train an image model)")
        if o.frame_steps < 1:
            raise UserError("task_options.frame_steps must be >= 1")
        if o.temporal_steps < 1:
            raise UserError("task_options.temporal_steps must be >= 1")
        if o.motion not in ("synthetic", "real"):
            raise UserError(f"task_options.motion must be 'synthetic' or 'real', got {o.motion!r}")
        if o.motion == "real" and o.n_flows < 1:
            raise UserError("task_options.n_flows must be >= 1")
        if o.motion == "real" and not (o.video or o.temporal_weight > 0):
            raise UserError("task_options.motion = real moves a video model's training clips and the temporal "
                            "term: this model has neither (video = false, temporal_weight = 0)")

    def init_differences(self, other) -> list[str]:
        o = self.options
        if other.arbitrary != o.arbitrary:
            kind = {True: "an arbitrary-style model", False: "a one-style model"}
            return [f"it is {kind[other.arbitrary]}, this run trains {kind[o.arbitrary]}"]
        if not o.arbitrary and other.style != o.style:
            return [f"its style is {other.style}, this run's {o.style}"]
        return []

    def load_training_data(self) -> None:
        self.content_bank("train")
        self.style_bank()
        if self.options.motion == "real" and (self.options.video or self.options.temporal_weight > 0):
            self.flow_bank()

    def training_tensors(self) -> list[torch.Tensor]:
        self.style_bank()                  # rows: a crop's and (arbitrary) a style's index
        return [self.content_bank("train"), self._bank_digest]

    def flow_bank(self) -> torch.Tensor:
        """``motion = 'real'``: the real flows ``[n_flows, 2, size, size]`` (float16, on the device)."""
        if self._flows is None:
            o = self.options
            flows = self._data.get("flows")
            if flows is None:
                from ..data.style import video_flows
                flows = video_flows(o.size, o.n_flows)
            self._flows = flows.to(self.device)
        return self._flows

    def motion_flow(self, shape: tuple, generator: torch.Generator | None, device) -> torch.Tensor:
        """A training motion ``[B, 2, H, W]`` (pixels): the synthetic one, or with ``motion =
        'real'`` a global shift plus a real flow of the bank (drawn with ``generator``)."""
        from ..ops.temporal import synthetic_motion
        o = self.options
        if o.motion == "synthetic":
            return synthetic_motion(shape, generator, device, o.motion_pixels, o.motion_pixels / 2)
        bank = self.flow_bank()
        if tuple(bank.shape[2:]) != tuple(shape[2:]):
            raise ValueError(f"the flow bank is {bank.shape[2]}x{bank.shape[3]}, the states {shape[2]}x{shape[3]}")
        idx = torch.randint(0, len(bank), (shape[0],), generator=generator).to(bank.device)
        shift = synthetic_motion(shape, generator, device, o.motion_pixels, 0.0)
        return shift + bank[idx].float().to(device)

    # -- loss network, styles, content ----------------------------------------------------------
    @property
    def objective(self):
        if self._objective is None:
            from ..features.style import StyleObjective
            from ..features.vgg import VGG16Features
            if self.options.vgg == "random":
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(0)       # the CPU's only: a GPU's stream stays the run's
                    vgg = VGG16Features(normalize=False, pretrained=False)
            else:
                vgg = VGG16Features(normalize=False)
            self._objective = StyleObjective(vgg).to(self.device)
        return self._objective

    @property
    def n_styles(self) -> int:
        """Styles in the bank: every source's (``made+photos``: twice ``options.n_styles``); 1 for one style."""
        return len(self.style_bank()[1]) if self.options.arbitrary else 1

    def style_bank(self) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """``(grams per layer [S, C, C], codes [S, D] or None)`` of the training styles."""
        if self._bank is None:
            o = self.options
            if o.arbitrary:
                from ..data.images import from_uint8
                from ..data.style import style_images
                named = style_images(o.styles, o.n_styles,
                                     check=lambda name, a: check_side(torch.from_numpy(a).permute(2, 0, 1),
                                                                      f"style image {name}"))
                from ..core.checkpoint import data_fingerprint
                digest = data_fingerprint([torch.tensor(a) for _, a in named])
                self._bank_digest = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8)
                images = [from_uint8(a)[None] for _, a in named]
                if len(images) < o.n_styles:
                    raise UserError(f"{o.styles} holds {len(images)} style images, task_options.n_styles "
                                    f"is {o.n_styles} (--set task_options.n_styles={len(images)} uses them all)")
            else:
                images = [load_style_image(o.style, o.style_size)]
            stats = [self.objective.style_stats(im.to(self.device)) for im in images]     # one VGG16 pass each
            grams = [torch.cat(g) for g in zip(*(gr for gr, _ in stats))]
            self._bank = (grams, torch.cat([c for _, c in stats]) if o.arbitrary else None)
        return self._bank

    def grams_of(self, style: torch.Tensor) -> list[torch.Tensor]:
        return [g[style] for g in self.style_bank()[0]]

    def code_of(self, style: torch.Tensor) -> torch.Tensor | None:
        codes = self.style_bank()[1]
        return None if codes is None else codes[style]

    def load_content(self, split: str, n: int = 0, seed: int = 0) -> torch.Tensor:
        """uint8 crops of the content source: the split's bank (``n = 0``, crop seed 0), or ``n``
        other crops of the same pictures with another ``seed`` (validation crops)."""
        o = self.options
        n = n or (o.n_content if split == "train" else max(8, o.n_content // 8))
        if o.content == "photos":
            from ..data.style import content_crops
            return content_crops(o.size, n, split, seed)
        from ..data.style import folder_crops
        return folder_crops(o.content, o.size, n, split, seed)

    def content_bank(self, split: str = "train") -> torch.Tensor:
        """uint8 ``[N, 3, size, size]`` content crops of a split, on the task's device."""
        if split not in ("train", "test"):
            raise UserError(f"split must be train or test, got {split!r}")
        key = (split, self.device)
        if key not in self._on_device:
            if split not in self._data:
                self._data[split] = self.load_content(split)
            bank = self._data[split]
            s = self.options.size
            if bank.dim() != 4 or tuple(bank.shape[1:]) != (3, s, s):
                raise UserError(f"{split} content: expected [N, 3, {s}, {s}] images, got {tuple(bank.shape)}")
            self._on_device[key] = bank.to(self.device)
        return self._on_device[key]

    # -- the core's interface -------------------------------------------------------------------
    @property
    def cond_dim(self) -> int:
        from ..features.style import CODE_DIM
        return CODE_DIM if self.options.arbitrary else 0

    @property
    def plan_shape(self) -> tuple[int, ...]:
        o = self.options
        return (o.plan_channels, o.size // 4, o.size // 4)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return (3, self.options.size, self.options.size)

    def build_policy(self) -> MetaPolicy:
        o = self.options
        v = o.video
        planner = StylePlanner(tuple(o.widths), o.plan_channels, self.cond_dim, v and o.step_gru, v and o.frame_gru,
                               o.memory_channels)
        return MetaPolicy(planner, StyleActor(tuple(o.widths), o.plan_channels, o.residual), self.plan_shape,
                          any_size=True)

    def build_critic(self, critic_on: str = "plan"):
        if critic_on != "plan":
            raise UserError("the style task's critic scores the plan (sac.critic_on = 'plan')")
        o = self.options
        return StyleCritic(o.plan_channels, tuple(o.critic_widths), self.cond_dim, o.memory_channels if o.video else 0)

    def state_fields(self) -> dict[str, Field]:
        o, s = self.options, self.options.size
        fields = {"index": Field((), "int64", static=True), "style": Field((), "int64", static=True),
                  "current": Field((3, s, s), "uint8")}
        if o.video:        # a clip's frame is not in the bank; the memory is the policy's
            fields["content"] = Field((3, s, s), "uint8")
            fields["memory"] = Field((2 * o.memory_channels, s // 4, s // 4), "float16")
        return fields

    def frame_memory(self, memory: torch.Tensor) -> torch.Tensor:
        """The memory a new frame starts with: the step half cleared, the frame half kept."""
        step, frame = memory.chunk(2, 1)
        return torch.cat([torch.zeros_like(step), frame], 1)

    def next_state(self, state: dict, action: torch.Tensor) -> dict:
        """``state`` after ``action`` within a frame: the next image, and a video model's memory."""
        nxt = {**state, "current": action[:, :3]}
        if self.options.video:
            nxt["memory"] = F.pixel_unshuffle(action[:, 3:], 4)
        return nxt

    def make_env(self, n: int, generator: torch.Generator, split: str = "train") -> StyleEnv:
        return StyleEnv(self, n, generator, split)

    def observe(self, state: dict):
        o = self.options
        if not (o.arbitrary or o.video):
            return state["current"]
        obs = {"image": state["current"]}
        if o.arbitrary:
            obs["code"] = state["code"] if "code" in state else self.code_of(state["style"])
        if o.video:
            obs["memory"] = state["memory"]
        return obs

    @property
    def score_name(self) -> str:
        return f"-{self.options.style_weight:g} x style loss"

    def content_of(self, state: dict) -> torch.Tensor:
        if "content" in state:
            return state["content"]
        return self.content_bank("train")[state["index"]].float() / 255

    def auxiliary_loss(self, state: dict, action: torch.Tensor, policy=None):
        o = self.options
        obj = self.objective
        image = action[:, :3]
        content, style = obj(image, obj.content_features(self.content_of(state)), self.grams_of(state["style"]))
        tv = total_variation(image)
        loss = o.content_weight * content.mean() + o.style_weight * style.mean() + o.tv_weight * tv.mean()
        logs = {"content": content.mean().item(), "style": style.mean().item(), "tv": tv.mean().item()}
        if o.temporal_weight > 0 and policy is not None:
            temporal = self.temporal_loss(state, policy)
            loss = loss + o.temporal_weight * temporal
            logs["temporal"] = temporal.item()
        return loss, logs

    def temporal_loss(self, state: dict, policy) -> torch.Tensor:
        """Compound temporal regularisation: ``|f(W(x) + n) - W(f(x))|_1`` (mean) for a training
        motion ``W`` (``motion_flow``; the memory moved with it) and noise ``n``; the mean
        plan on both sides (the consistency of the deterministic map). With ``temporal_steps``
        K > 1, ``f`` is applied K times to both and the K steps' L1s are averaged."""
        from ..ops.temporal import warp_image
        o = self.options
        x = state["current"]
        flow = self.motion_flow(x.shape, None, x.device)
        moved = {**state, "current": (warp_image(x, flow) + o.motion_noise * torch.randn_like(x)).clamp(0, 1)}
        if o.video:
            small = F.avg_pool2d(flow, 4) / 4
            moved["memory"] = warp_image(state["memory"], small)
        loss = 0.0
        for _ in range(o.temporal_steps):
            state = self.next_state(state, policy(self.observe(state), sample=False).action)
            moved = self.next_state(moved, policy(self.observe(moved), sample=False).action)
            loss = loss + (moved["current"] - warp_image(state["current"], flow)).abs().mean()
        return loss / o.temporal_steps


# -- inference and evaluation -------------------------------------------------------------------
def pad4(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``[B, C, H, W]`` to sides that are multiples of 4; ``(padded, (H, W))``."""
    h, w = x.shape[2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _run(task: StyleTask, policy, x: torch.Tensor, steps: int, sample: bool, on_step=None,
         **start) -> tuple[list, float, StyleEnv]:
    """``steps`` steps from ``x`` (sides multiples of 4): ``(images, seconds of the steps, env)``;
    with ``on_step`` (called with each step's image as it comes) the images hold the last step
    only: a full-HD image held at each of 200 steps is 5 GB."""
    from ..core.rollout import rollout
    env = task.make_env(0, torch.Generator(), "test")
    state = env.start(x, **start)
    t0 = time.perf_counter()
    outs = []
    for _, s, _, _ in rollout(policy, task, env, state, steps, sample):
        if on_step is not None:
            on_step(s["current"])
            outs.clear()
        outs.append(s["current"])
    sync(task.device)
    return outs, time.perf_counter() - t0, env


def _style_argument(task: StyleTask, style_image, needed: bool = False) -> torch.Tensor | None:
    """``style_image`` checked as one image ``[1, 3, h, w]`` (grey and uint8 taken), or None where
    a one-style model does without; given to a one-style model to stylise with (not ``needed`` to
    score), it is refused rather than ignored."""
    if style_image is not None and not (task.options.arbitrary or needed):
        raise ValueError("style_image: this one-style model stylises with its own style; style_image is for "
                         "arbitrary-style models (train style --arbitrary)")
    if style_image is None:
        if task.options.arbitrary or needed:
            raise ValueError("style_image: an arbitrary-style model needs a style image [1, 3, h, w]"
                             if task.options.arbitrary else "style_image: give the style image to score against")
        return None
    style_image = as_unit_images(style_image, "style_image", 3, min_side=MIN_SIDE)
    if len(style_image) != 1:
        raise ValueError(f"style_image holds {len(style_image)} images: give one [1, 3, h, w]")
    return style_image


@torch.no_grad()
def stylize(task: StyleTask, policy, content: torch.Tensor, steps: int, style_image: torch.Tensor | None = None,
            sample: bool = False, on_step=None) -> tuple[list[torch.Tensor], float]:
    """Images after steps 1..``steps`` (``[T] x [B, 3, H, W]`` on the CPU; any ``H, W``) of
    ``content [B, 3, H, W]`` in [0, 1], and the seconds the steps took (without copies; with
    ``on_step``, its calls too). An
    arbitrary model stylises with ``style_image [1, 3, h, w]``; a one-style model uses its own
    style (and needs neither VGG nor ``style_image``). ``on_step``: called with each step's image
    (``[B, 3, H, W]`` on the CPU) as it comes, and only the last step is returned (memory for one
    image, not ``steps``)."""
    from ..core.rollout import check_steps
    check_steps(steps)
    content = as_unit_images(content, "content", 3, min_side=MIN_SIDE)
    style_image = _style_argument(task, style_image)
    x, (h, w) = pad4(content.to(task.device))
    seen = None if on_step is None else lambda o: on_step(o[:, :, :h, :w].cpu())
    outs, seconds, _ = _run(task, policy, x, steps, sample, seen, style_image=style_image, scored=False)
    return [o[:, :, :h, :w].cpu() for o in outs], seconds


def step_losses(task: StyleTask, policy, content: torch.Tensor, style_image: torch.Tensor, steps: int = 10
                ) -> tuple[list[torch.Tensor], float, list[list[float]]]:
    """``stylize`` ``content`` for ``steps`` steps and measure each step: ``(images, seconds,
    [[mean content loss, mean style loss] per step])`` against ``style_image`` (the model's own
    style, or the one an arbitrary model is given)."""
    outs, seconds = stylize(task, policy, content, steps, style_image if task.options.arbitrary else None)
    losses = style_losses(task, torch.cat(outs), content.repeat(len(outs), 1, 1, 1), style_image)  # grams once
    return outs, seconds, torch.stack([v.view(len(outs), -1).mean(1) for v in losses], 1).tolist()


@torch.no_grad()
def stylize_frames(task: StyleTask, policy, frames, steps: int, style_image: torch.Tensor | None = None,
                   sample: bool = False):
    """Yield ``(output [3, H, W] on the CPU, seconds)`` for each frame ``[3, H, W]`` in [0, 1] of
    the iterable ``frames`` after ``steps`` steps; a video model carries its frame memory from
    one frame to the next (the step memory starts empty on each frame)."""
    from ..core.rollout import check_steps
    check_steps(steps)
    style_image = _style_argument(task, style_image)
    code = None if style_image is None else task.objective.style_code(style_image.to(task.device))   # once, not per frame
    memory = None
    for k, frame in enumerate(frames):
        frame = as_unit_frame(frame, f"frame {k + 1}", 3, min_side=MIN_SIDE)
        x, (h, w) = pad4(frame.to(task.device))
        if memory is not None and memory.shape[2:] != (x.shape[2] // 4, x.shape[3] // 4):
            memory = None                                  # the frame size changed: start afresh
        outs, seconds, env = _run(task, policy, x, steps, sample, lambda o: None, style_image=style_image,
                                  scored=False, memory=memory, style_code=code)          # the last step kept
        if env.memory is not None:
            memory = task.frame_memory(env.memory)
        yield outs[-1][0, :, :h, :w].cpu(), seconds


def stylize_video(task: StyleTask, policy, frames: torch.Tensor, steps: int,
                  style_image: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """``frames [N, 3, H, W]`` -> (outputs ``[N, 3, H, W]``, seconds of the steps), frame by frame."""
    outs = list(stylize_frames(task, policy, frames, steps, style_image))
    if not outs:
        raise ValueError("frames holds no frame")
    return torch.stack([o for o, _ in outs]), sum(s for _, s in outs)


def style_losses(task: StyleTask, images: torch.Tensor, content: torch.Tensor, style_image: torch.Tensor,
                 batch: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation form's ``(content loss [N], style loss [N])`` of ``images`` against their
    contents and one style image (at its own size)."""
    images, content = as_unit_pairs(images, content, ("images", "content"), 3)
    style_image = _style_argument(task, style_image, needed=True)
    obj = task.objective
    grams = obj.style_grams(style_image.to(task.device))
    cs, ss = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            im, co = images[i:i + batch].to(task.device), content[i:i + batch].to(task.device)
            c, s = obj(im, obj.content_features(co), grams)
            cs.append(c.cpu())
            ss.append(s.cpu())
    return torch.cat(cs), torch.cat(ss)


def video_scores(task: StyleTask, outputs: torch.Tensor, frames: torch.Tensor, style_image: torch.Tensor
                 ) -> dict[str, float]:
    """``{"warp_error", "style"}`` of the stylised ``outputs`` of a clip's ``frames`` (both
    ``[N, 3, H, W]`` in [0, 1]): the warping error with the input frames' flow and occlusion mask
    (``ops/temporal``), and the mean style loss against ``style_image``."""
    from ..ops.temporal import warp_error
    outputs, frames = as_unit_pairs(outputs, frames, ("outputs", "frames"), 3)
    src = (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return {"warp_error": warp_error(src, outputs.permute(0, 2, 3, 1).cpu().numpy()),
            "style": float(style_losses(task, outputs, frames, style_image)[1].mean())}
