"""Data-parallel training under ``torchrun`` (torch.distributed: gloo on the CPU, nccl on CUDA).

Each process (rank) runs its own environments on its own replay shard; every optimiser step
averages the gradients of all ranks first, so the networks stay the same everywhere. Rank 0
writes the run directory. Outside ``torchrun`` (no ``WORLD_SIZE`` above 1) every function here
is a no-op on one process.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (``torchrun``'s ``RANK`` before the group is joined); 0 alone."""
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def launched() -> bool:
    """Started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> torch.device:
    """Join the process group when ``torchrun`` started this process (once), and give each rank
    its own GPU (``cuda`` becomes ``cuda:LOCAL_RANK``); the device to train on."""
    if not launched():
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


@contextmanager
def rank_zero_first():
    """Rank 0 runs the block first (it may fill the data cache), the others after it."""
    if active() and rank() > 0:
        dist.barrier()
    yield
    if active() and rank() == 0:
        dist.barrier()


def broadcast(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers, everywhere."""
    if active():
        for t in module.state_dict().values():
            c = t.contiguous()                 # a channels-last weight is sent in the plain layout
            dist.broadcast(c, 0)
            if c is not t:
                t.copy_(c)


def average_gradients(params, values: torch.Tensor) -> torch.Tensor:
    """Average the ``.grad`` of ``params`` (those that have one) and the 1-d or 0-d ``values``
    (a loss, a check) over the ranks, in one all-reduce; returns the averaged ``values``."""
    if not active():
        return values
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [values.detach().reshape(-1).to(grads[0] if grads else values)])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    i = 0
    for g in grads:
        g.copy_(flat[i: i + g.numel()].view_as(g))
        i += g.numel()
    return flat[i:].view_as(values)


def all_ranks(*flags: bool) -> list[bool]:
    """Each flag and-ed over the ranks (one all-reduce), so every rank takes the same branch."""
    if not active():
        return [bool(f) for f in flags]
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(bool(f)) for f in flags], device=device)
    dist.all_reduce(t, dist.ReduceOp.MIN)
    return [bool(v) for v in t.tolist()]


def any_rank(flag: bool) -> bool:
    return not all_ranks(not flag)[0]


def same_everywhere(values: list[float]) -> bool:
    """Whether every rank holds rank 0's ``values`` (on every rank the same answer)."""
    if not active():
        return True
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    first = mine.clone()
    dist.broadcast(first, 0)
    return all_ranks(torch.equal(mine, first))[0]
