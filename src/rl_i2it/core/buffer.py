"""Replay storage: preallocated, compact, uniform sampling; its byte size is known before allocation.

A task declares what one state holds as ``{name: Field}``. Images in [0, 1] are stored as uint8,
other floats as float16; a field marked ``static`` (the fixed image, say) is the same in the next
state and is stored once. The plan is stored (float16) because the critic is trained on the plan
that was taken.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import UserError

STORAGE = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32, "int64": torch.int64}


@dataclass(frozen=True)
class Field:
    shape: tuple[int, ...]
    dtype: str = "uint8"
    """'uint8' (values in [0, 1], quantised to 1/255), 'float16', 'float32' or 'int64'."""
    static: bool = False
    """True when the next state has the same value (stored once)."""

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=STORAGE[self.dtype]).element_size()


def encode(x: torch.Tensor, dtype: str) -> torch.Tensor:
    if dtype == "uint8":
        return (x.clamp(0, 1) * 255).round_().to(torch.uint8)
    return x.to(STORAGE[dtype])


def decode(x: torch.Tensor, dtype: str) -> torch.Tensor:
    if dtype == "uint8":
        return x.float().div_(255)
    return x if dtype == "int64" else x.float()


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


class ReplayBuffer:
    """Ring buffer of transitions ``(state, z, reward, next_state, done)``.

    ``z`` is what the critic scores: the plan, or the action in the ``critic_on=action`` ablation.
    """

    def __init__(self, capacity: int, state_fields: dict[str, Field], z_field: Field,
                 device: torch.device | str = "cpu", memory_fraction: float = 0.6, verbose: bool = True):
        self.capacity, self.device = capacity, torch.device(device)
        self.state_fields = dict(state_fields)
        self.layout: dict[str, Field] = {}
        for name, f in self.state_fields.items():
            self.layout[name] = f
            if not f.static:
                self.layout["next_" + name] = f
        self.layout["z"] = z_field
        self.layout["reward"] = Field((), "float32")
        self.layout["done"] = Field((), "uint8")
        need = self.nbytes
        if verbose:
            print(f"replay: {capacity} transitions x {self.bytes_per_transition} B = {need / 2**20:.1f} MiB "
                  f"({', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in self.layout.items())})")
        if self.device.type == "cpu" and need > memory_fraction * available_memory_bytes():
            raise UserError(f"replay needs {need / 2**30:.2f} GiB, more than {memory_fraction:.0%} of the "
                            f"{available_memory_bytes() / 2**30:.2f} GiB available: lower train.replay_size")
        self.data = {k: torch.zeros((capacity, *f.shape), dtype=STORAGE[f.dtype], device=self.device)
                     for k, f in self.layout.items()}
        self.pos, self.size = 0, 0

    @property
    def bytes_per_transition(self) -> int:
        return sum(f.nbytes for f in self.layout.values())

    @property
    def nbytes(self) -> int:
        return self.capacity * self.bytes_per_transition

    def __len__(self) -> int:
        return self.size

    @torch.no_grad()
    def add(self, state: dict, z: torch.Tensor, reward: torch.Tensor, next_state: dict,
            done: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """Store a batch of transitions (rows where ``keep`` is False are skipped)."""
        rows = {name: state[name] for name in self.state_fields}
        rows.update({"next_" + n: next_state[n] for n, f in self.state_fields.items() if not f.static})
        rows.update(z=z, reward=reward, done=done.float())
        if keep is not None:
            rows = {k: v[keep] for k, v in rows.items()}
        n = next(iter(rows.values())).shape[0]
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        for k, v in rows.items():
            self.data[k][idx] = encode(v.to(self.device), self.layout[k].dtype)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> dict:
        """A uniform batch: ``{"state": {...}, "next_state": {...}, "z", "reward", "done"}``, decoded."""
        if self.size == 0:
            raise RuntimeError("sampling from an empty replay")
        idx = torch.randint(0, self.size, (batch_size,), generator=generator).to(self.device)
        device = device or self.device
        get = {k: decode(self.data[k][idx], f.dtype).to(device) for k, f in self.layout.items()}
        state = {n: get[n] for n in self.state_fields}
        next_state = {n: get[n] if f.static else get["next_" + n] for n, f in self.state_fields.items()}
        return {"state": state, "next_state": next_state, "z": get["z"], "reward": get["reward"],
                "done": get["done"]}

    def state_dict(self) -> dict:
        return {"pos": self.pos, "size": self.size, "data": {k: v[: self.size].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.pos, self.size = sd["pos"], sd["size"]
        for k, v in sd["data"].items():
            self.data[k][: v.shape[0]] = v.to(self.device)
