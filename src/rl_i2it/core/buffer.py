"""Replay storage: preallocated, compact, uniform sampling; its byte size is known before allocation.

A task declares what one state holds as ``{name: Field}``. Images in [0, 1] are stored as uint8,
other floats as float16; a field marked ``static`` (the fixed image, say) is the same in the next
state. Each state is stored once: a transition points at the row of its next state. The plan is stored (float16) because the critic is trained on the plan
that was taken, and so is each state's step in its episode (0 = the episode's first state).
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
    """Ring of rows; a row holds one state and, once its successor is known, the transition
    ``(z, reward, done, next_row)`` that leaves it.

    A state is stored once: the next state of step t is the row of step t+1's state (no
    duplicated next state), so an episode of L steps takes L + 1 rows. ``add(..., first=True)``
    (the default) says the batch's states are new (an episode start), so they get rows too;
    with ``first=False`` row ``i`` of the batch continues the episode of the previous call's row
    ``i``. Each row records its state's ``step`` in the episode: 0 for a ``first`` call's
    states, one more per call after. ``z`` is what the critic scores: the plan, or the action in
    the ``critic_on=action`` ablation. Rows are recycled oldest first; a transition whose state row is recycled is gone,
    and one whose next row is recycled is never left behind (rows are recycled in the order they
    were written, and a state row is always written before its next row).
    """

    def __init__(self, capacity: int, state_fields: dict[str, Field], z_field: Field,
                 device: torch.device | str = "cpu", memory_fraction: float = 0.6, verbose: bool = True):
        if capacity < 2:
            raise UserError("train.replay_size must be >= 2")
        self.capacity, self.device = capacity, torch.device(device)
        self.state_fields = dict(state_fields)
        self.layout: dict[str, Field] = dict(self.state_fields)
        self.layout["z"] = z_field
        self.layout["reward"] = Field((), "float32")
        self.layout["done"] = Field((), "uint8")
        self.layout["next_row"] = Field((), "int64")
        self.layout["valid"] = Field((), "uint8")
        self.layout["step"] = Field((), "int64")
        need = self.nbytes
        if verbose:
            print(f"replay: {capacity} rows x {self.bytes_per_transition} B = {need / 2**20:.1f} MiB, one state "
                  f"per row ({', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in self.layout.items())})")
        free = available_memory_bytes() if self.device.type == "cpu" else torch.cuda.mem_get_info(self.device)[0]
        if need > memory_fraction * free:
            raise UserError(f"replay needs {need / 2**30:.2f} GiB, more than {memory_fraction:.0%} of the "
                            f"{free / 2**30:.2f} GiB {'available' if self.device.type == 'cpu' else 'free on ' + str(self.device)}"
                            f": lower train.replay_size")
        self.data = {k: torch.zeros((capacity, *f.shape), dtype=STORAGE[f.dtype], device=self.device)
                     for k, f in self.layout.items()}
        self.pos, self.size = 0, 0
        self.tail = torch.full((0,), -1, dtype=torch.long, device=self.device)   # row of each env's last state
        self.tail_step = torch.zeros(0, dtype=torch.long, device=self.device)    # and its step in the episode

    @property
    def bytes_per_transition(self) -> int:
        """Bytes of one row: about one transition (episodes of L steps take L + 1 rows)."""
        return sum(f.nbytes for f in self.layout.values())

    @property
    def nbytes(self) -> int:
        return self.capacity * self.bytes_per_transition

    def __len__(self) -> int:
        """Transitions that can be sampled."""
        return int(self.data["valid"].sum())

    def _rows(self, n: int) -> torch.Tensor:
        """Claim ``n`` rows, oldest first; forget what they held."""
        if n > self.capacity:
            raise UserError(f"train.replay_size ({self.capacity}) must hold at least 2 x n_envs rows")
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        self.data["valid"][idx] = 0
        self.tail[torch.isin(self.tail, idx)] = -1
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return idx

    def _write_states(self, state: dict, rows: torch.Tensor, sel: torch.Tensor) -> None:
        for name, f in self.state_fields.items():
            self.data[name][rows] = encode(state[name][sel].to(self.device), f.dtype)

    @torch.no_grad()
    def add(self, state: dict, z: torch.Tensor, reward: torch.Tensor, next_state: dict,
            done: torch.Tensor, keep: torch.Tensor | None = None, first: bool = True) -> None:
        """Store a batch of transitions (rows where ``keep`` is False are skipped)."""
        n = z.shape[0]
        sel = torch.arange(n, device=z.device) if keep is None else torch.nonzero(keep).flatten().to(z.device)
        if first or self.tail.numel() != n:
            self.tail = torch.full((n,), -1, dtype=torch.long, device=self.device)
            self.tail_step = torch.zeros(n, dtype=torch.long, device=self.device)
        dev_sel = sel.to(self.device)
        need = dev_sel[self.tail[dev_sel] < 0]
        if len(need):
            rows = self._rows(len(need))
            self._write_states(state, rows, need.to(z.device))
            self.data["step"][rows] = self.tail_step[need]
            self.tail[need] = rows
        src = self.tail[dev_sel].clone()
        nxt = self._rows(len(sel))
        self._write_states(next_state, nxt, sel)
        self.tail_step[dev_sel] += 1
        self.data["step"][nxt] = self.tail_step[dev_sel]
        lost = src[~torch.isin(src, self.tail[dev_sel])]          # a state row recycled just now
        if len(lost):
            raise UserError("train.replay_size is too small for this many parallel episodes")
        self.data["z"][src] = encode(z[sel].to(self.device), self.layout["z"].dtype)
        self.data["reward"][src] = reward[sel].to(self.device, torch.float32)
        self.data["done"][src] = encode(done[sel].float().to(self.device), "uint8")
        self.data["next_row"][src] = nxt
        self.data["valid"][src] = 1
        self.tail[dev_sel] = nxt

    def sample(self, batch_size: int, generator: torch.Generator | None = None, device=None,
               first_share: float = 0.0) -> dict:
        """A uniform batch: ``{"state": {...}, "next_state": {...}, "z", "reward", "done", "step"}``,
        decoded (``step``: the state's step in its episode, int64). ``first_share``: this fraction
        of the batch (rounded) is drawn from the episodes' first transitions only, the rest from all."""
        valid = torch.nonzero(self.data["valid"]).flatten()
        if len(valid) == 0:
            raise RuntimeError("sampling from an empty replay")
        n_first = round(first_share * batch_size)
        idx = valid[torch.randint(0, len(valid), (batch_size - n_first,), generator=generator).to(self.device)]
        if n_first:
            firsts = valid[self.data["step"][valid] == 0]
            pool = firsts if len(firsts) else valid              # (none held: a uniform draw)
            idx = torch.cat([pool[torch.randint(0, len(pool), (n_first,), generator=generator).to(self.device)], idx])
        nxt = self.data["next_row"][idx]
        device = device or self.device

        def get(name, rows):
            return decode(self.data[name][rows], self.layout[name].dtype).to(device)

        state = {n: get(n, idx) for n in self.state_fields}
        next_state = {n: state[n] if f.static else get(n, nxt) for n, f in self.state_fields.items()}
        return {"state": state, "next_state": next_state, "z": get("z", idx), "reward": get("reward", idx),
                "done": get("done", idx), "step": get("step", idx)}

    def state_dict(self) -> dict:
        return {"pos": self.pos, "size": self.size, "data": {k: v[: self.size].cpu() for k, v in self.data.items()}}

    def load_state_dict(self, sd: dict) -> None:
        self.pos, self.size = sd["pos"], sd["size"]
        for k, v in sd["data"].items():
            self.data[k][: v.shape[0]] = v.to(self.device)
        if "step" not in sd["data"]:           # saved before steps were recorded: follow the chains
            self.data["step"][: self.size] = self._chain_steps()
        self.tail = torch.full((0,), -1, dtype=torch.long, device=self.device)

    def _chain_steps(self) -> torch.Tensor:
        """Each held row's step, rebuilt from the next-row links: a row no transition leads to is
        an episode's first state (also one whose predecessor was recycled: counted from there)."""
        n = self.size
        valid, nxt = self.data["valid"][:n] > 0, self.data["next_row"][:n]
        led_to = torch.zeros(n, dtype=torch.bool, device=self.device)
        led_to[nxt[valid]] = True
        step = torch.where(led_to, -1, 0)
        for _ in range(n):
            known = valid & (step >= 0) & (step[nxt] < 0)
            if not known.any():
                break
            step[nxt[known]] = step[known] + 1
        return step.clamp_min(0)

