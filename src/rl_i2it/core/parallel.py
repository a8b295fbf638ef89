"""Data-parallel training under ``torchrun`` (torch.distributed: gloo on the CPU, nccl on CUDA).

Each process (rank) runs its own environments on its own replay shard; every optimiser step
averages the gradients of all ranks first, so the networks stay the same everywhere. Rank 0
writes the run directory. Outside ``torchrun`` (``launched``: ``WORLD_SIZE`` above 1 and
``LOCAL_RANK`` set) every function here is a no-op on one process.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import UserError


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
    """Started by ``torchrun`` with more than one process (``WORLD_SIZE`` > 1 and ``LOCAL_RANK``:
    a batch system's own ``WORLD_SIZE`` alone does not count)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def init(device: torch.device) -> torch.device:
    """Join the process group when ``torchrun`` started this process (once), and give each rank
    its own GPU (``cuda`` becomes ``cuda:LOCAL_RANK``); the device to train on."""
    if not launched():
        return device
    if device.type == "cuda" and device.index is not None:
        raise UserError(f"--device {device} under torchrun would put every rank on one GPU: give --device cuda "
                        f"(each rank takes cuda:LOCAL_RANK; CUDA_VISIBLE_DEVICES picks the GPUs)")
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise UserError(f"torchrun rank with LOCAL_RANK {local_rank()} sees {torch.cuda.device_count()} GPU(s): "
                            f"start at most that many processes per machine (--nproc-per-node)")
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)        # nccl's collectives and the flags below use the current GPU
    if not dist.is_initialized():
        # long enough for one rank to fill a data cache while the others wait (rank_zero_first)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


TIMEOUT = timedelta(hours=2)
"""How long a collective waits for the other ranks."""


def close() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def finish(code: int) -> int:
    """End a command with exit status ``code``: alone, return it; under ``torchrun``, leave the
    group and end the process at once, its output flushed (its files are closed by then). The
    interpreter's own teardown of c10d's threads could abort a rank whose work was done and saved
    (SIGABRT, "terminate called without an active exception": 2 or 3 of the full test runs of
    sessions 29-30, under load), and
    torchrun then fails the whole job."""
    if not launched():
        return code
    close()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
    return code                  # (not reached)


def _flag_device() -> str:
    """Where the small tensors of the agreements live: nccl takes only CUDA tensors."""
    return f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"


@contextmanager
def rank_zero_first():
    """The first rank of each machine runs the block first (it may fill the machine's data
    cache), the others after it."""
    if active() and local_rank() > 0:
        dist.barrier()
    yield
    if active() and local_rank() == 0:
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


def on_every_rank(*flags: bool) -> list[bool]:
    """Each flag and-ed over the ranks (one all-reduce), so every rank takes the same branch."""
    if not active():
        return [bool(f) for f in flags]
    t = torch.tensor([float(bool(f)) for f in flags], device=_flag_device())
    dist.all_reduce(t, dist.ReduceOp.MIN)
    return [bool(v) for v in t.tolist()]


def summed(values: list[float]) -> list[float]:
    """``values`` summed over the ranks (one all-reduce, in float64)."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64, device=_flag_device())
    dist.all_reduce(t)
    return t.tolist()


def from_rank_zero(value: float) -> float:
    """Rank 0's ``value`` on every rank (a clock the stopping rule reads: one rank's, so all agree)."""
    if not active():
        return float(value)
    t = torch.tensor([value], dtype=torch.float64, device=_flag_device())
    dist.broadcast(t, 0)
    return float(t.item())


def wait_for_all() -> None:
    """Every rank waits here for the others: a rank may not end (torchrun then stops the others,
    SIGTERM) while rank 0 still writes the run's last checkpoint; a rank that failed instead is
    one line on the others."""
    if active():
        try:
            dist.barrier()
        except RuntimeError:              # (gloo: "Connection closed by peer") another rank failed: its error says why
            raise UserError("another rank ended before every rank was done (its error above)") from None


def same_everywhere(values: list[float]) -> bool:
    """Whether every rank holds rank 0's ``values`` (on every rank the same answer)."""
    if not active():
        return True
    mine = torch.tensor(values, dtype=torch.float64, device=_flag_device())
    first = mine.clone()
    dist.broadcast(first, 0)
    return on_every_rank(torch.equal(mine, first))[0]
