"""Fully convolutional planner-actor-critic of style transfer (paper section 4.4, Fig. 11).

Planner: a 9x9 conv, two stride-2 3x3 convs, each with instance norm and ReLU, and a residual
block; a 3x3 head gives the mean and log-std of the plan, a ``plan_channels`` map at 1/4 of the
image's side (64x64 for 256x256). Actor: three decoder layers with a skip from the planner
each (at 1/4: plan + residual features; x2 nearest upsampling + the stride-2 features; x2 + the
first conv's features), then a 9x9 conv to three channels. Reflection padding everywhere (zero
padding leaves borders in style transfer, Johnson et al.). With the default widths (16, 32, 64)
planner + actor hold about 0.18 M parameters, as the paper's.

The actor's output is the next image (sigmoid). ``residual=True`` adds it to the current image in
logit space instead, ``sigmoid(logit(x) + delta)`` (a zero output leaves the image as it is);
measured worse: repeated steps compound the change and the images darken (README).

Conditioning (``cond_dim > 0``, the arbitrary-style model): the observation holds a ``code
[B, cond_dim]``, a style image's VGG statistics; a small MLP maps the code to a scale and shift
of every instance norm of planner and actor (adaptive instance norm), and the critic adds a
projection of it to its first features.

Memory (video, paper section 4.5 and Fig. 19): a step-wise and a frame-wise convolutional GRU
on the 1/4-resolution features, each with ``memory_channels`` channels; the observation holds
their hidden states ``memory [B, 2 m, H/4, W/4]`` (step then frame), the GRUs' new states are
added (1x1 conv) to the features the plan and the actor see, and the actor returns them beside
the image, space-to-depth'ed to full resolution: ``[B, 3 + 2 m / 16, H, W]`` (the environment
keeps the step memory between the steps of a frame and the frame memory between frames).
Either GRU can be switched off (the ablations); its half of the memory then stays zero.

Observations are an image ``[B, 3, H, W]`` or a dict ``{"image", "code", "memory"}``.

Any image whose sides are multiples of 4 goes through (``stylize`` pads others by reflection).
No batch statistics: instance norm normalises each image by itself.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["StylePlanner", "StyleActor", "StyleCritic", "StyleConditioner", "ConvGRU", "split_obs"]


def split_obs(obs) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(image, style code or None, memory or None)`` of an image or a dict observation."""
    if isinstance(obs, dict):
        return obs["image"], obs.get("code"), obs.get("memory")
    return obs, None, None


class ConvGRU(nn.Module):
    """A convolutional GRU cell: ``h' = (1 - z) h + z tanh(W [x, r h])``."""

    def __init__(self, cin: int, channels: int):
        super().__init__()
        self.gates = rconv(cin + channels, 2 * channels)
        self.candidate = rconv(cin + channels, channels)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        return (1 - z) * h + z * torch.tanh(self.candidate(torch.cat([x, r * h], 1)))


def rconv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Reflection-padded convolution."""
    return nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


class NormAct(nn.Module):
    """Instance norm (+ the conditioner's scale and shift when given) and ReLU."""

    def __init__(self, c: int, act: bool = True):
        super().__init__()
        self.norm = nn.InstanceNorm2d(c, affine=True)
        self.act = act

    def forward(self, x: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(x)
        if film is not None:
            gamma, beta = film
            x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return F.relu(x) if self.act else x


class ConvNorm(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True):
        super().__init__()
        self.conv = rconv(cin, cout, k, stride)
        self.norm = NormAct(cout, act)

    def forward(self, x, film=None):
        return self.norm(self.conv(x), film)


class StyleConditioner(nn.Module):
    """``code [B, D] -> [(gamma, beta) per modulated layer]``, zero at initialisation and bounded
    (``tanh``: the scale ``1 + gamma`` stays in [0.5, 1.5], the shift in [-1, 1]) so that no
    style can switch the content off (unbounded, the model learned to erase it and paint one
    texture for every content)."""

    def __init__(self, cond_dim: int, channels: list[int], hidden: int = 128):
        super().__init__()
        self.channels = list(channels)
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * sum(channels)))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, code: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out, films, i = torch.tanh(self.mlp(code)), [], 0
        for c in self.channels:
            films.append((0.5 * out[:, i:i + c], out[:, i + c:i + 2 * c]))
            i += 2 * c
        return films


class StylePlanner(nn.Module):
    """``obs -> (mu, log_std [B, plan_channels, H/4, W/4], skips)``; skips carry the image, the
    features at 1, 1/2 and 1/4 and the conditioner's outputs for the actor."""

    def __init__(self, widths=(16, 32, 64), plan_channels: int = 1, cond_dim: int = 0,
                 step_gru: bool = False, frame_gru: bool = False, memory_channels: int = 16):
        super().__init__()
        w0, w1, w2 = widths
        self.c1, self.c2, self.c3 = ConvNorm(3, w0, 9), ConvNorm(w0, w1, 3, 2), ConvNorm(w1, w2, 3, 2)
        self.r1, self.r2 = ConvNorm(w2, w2), ConvNorm(w2, w2, act=False)
        self.head = rconv(w2, 2 * plan_channels)
        self.cond = StyleConditioner(cond_dim, [w0, w1, w2, w2, w2, w2, w1, w0]) if cond_dim else None
        m = memory_channels
        self.step_gru = ConvGRU(w2, m) if step_gru else None
        self.frame_gru = ConvGRU(w2, m) if frame_gru else None
        self.mix = nn.Conv2d(2 * m, w2, 1) if (step_gru or frame_gru) else None
        if self.mix is not None:      # the memory path starts closed: an image model's weights work unchanged
            nn.init.zeros_(self.mix.weight)
            nn.init.zeros_(self.mix.bias)

    def forward(self, obs):
        x, code, memory = split_obs(obs)
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(x.shape[-2:])}")
        films = self.cond(code) if self.cond is not None else [None] * 8
        f1 = self.c1(x, films[0])
        f2 = self.c2(f1, films[1])
        f3 = self.c3(f2, films[2])
        f3 = f3 + self.r2(self.r1(f3, films[3]), films[4])
        if self.mix is not None:
            if memory is None:
                raise ValueError("this planner has GRUs: the observation needs its memory")
            hs, hf = memory.chunk(2, 1)
            hs = self.step_gru(f3, hs) if self.step_gru is not None else hs
            hf = self.frame_gru(f3, hf) if self.frame_gru is not None else hf
            memory = torch.cat([hs, hf], 1)
            f3 = f3 + self.mix(memory)
        mu, log_std = self.head(f3).chunk(2, dim=1)
        return mu, log_std, (x, f1, f2, f3, films[5:], memory if self.mix is not None else None)


class StyleActor(nn.Module):
    """``(plan, skips) -> next image [B, 3, H, W]`` in [0, 1]."""

    def __init__(self, widths=(16, 32, 64), plan_channels: int = 1, residual: bool = False):
        super().__init__()
        w0, w1, w2 = widths
        self.residual = residual
        self.d3 = ConvNorm(plan_channels + w2, w2)
        self.d2 = ConvNorm(w2 + w1, w1)
        self.d1 = ConvNorm(w1 + w0, w0)
        self.out = rconv(w0, 3, 9)
        if residual:
            nn.init.normal_(self.out[1].weight, std=1e-3)
            nn.init.zeros_(self.out[1].bias)

    def forward(self, plan: torch.Tensor, skips) -> torch.Tensor:
        x, f1, f2, f3, films, memory = skips
        h = self.d3(torch.cat([plan, f3], 1), films[0])
        h = F.interpolate(h, size=f2.shape[-2:], mode="nearest")
        h = self.d2(torch.cat([h, f2], 1), films[1])
        h = F.interpolate(h, size=f1.shape[-2:], mode="nearest")
        h = self.d1(torch.cat([h, f1], 1), films[2])
        delta = self.out(h)
        if self.residual:
            image = torch.sigmoid(torch.logit(x.clamp(1e-3, 1 - 1e-3)) + delta)
        else:
            image = torch.sigmoid(delta)
        return image if memory is None else torch.cat([image, F.pixel_shuffle(memory, 4)], 1)


class StyleCritic(nn.Module):
    """``Q(obs, plan)``: the image rearranged losslessly to 1/4 resolution (space-to-depth, so
    the critic sees texture) beside the plan map, 7 reflection-padded convs (3 of stride 2),
    global average pooling, one linear layer."""

    def __init__(self, plan_channels: int = 1, widths=(32, 64, 64), cond_dim: int = 0, memory_channels: int = 0):
        super().__init__()
        a, b, c = widths
        self.memory = memory_channels > 0
        chans = [(48 + plan_channels + 2 * memory_channels, a, 1), (a, a, 2), (a, b, 1), (b, b, 2),
                 (b, c, 1), (c, c, 2), (c, c, 1)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s) for i, o, s in chans)
        self.cond = nn.Linear(cond_dim, a) if cond_dim else None
        self.linear = nn.Linear(c, 1)

    def forward(self, obs, plan: torch.Tensor) -> torch.Tensor:
        x, code, memory = split_obs(obs)
        h = torch.cat([F.pixel_unshuffle(x, 4), plan] + ([memory] if memory is not None and self.memory else []), 1)
        for i, conv in enumerate(self.convs):       # reflection padding (replicate on 1-pixel maps)
            h = conv(F.pad(h, (1, 1, 1, 1), mode="reflect" if min(h.shape[-2:]) > 1 else "replicate"))
            if i == 0 and self.cond is not None:
                h = h + self.cond(code)[:, :, None, None]
            h = F.leaky_relu(h, 0.2)
        return self.linear(h.mean((2, 3))).squeeze(1)
