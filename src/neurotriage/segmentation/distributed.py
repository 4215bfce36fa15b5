"""The torchrun side of training: process group, device, and the few collectives training needs.

Launched plainly, everything here degrades to a single process with no process group at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from neurotriage.files import sha256_chunks


@dataclass
class Dist:
    """This process's place in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0


def launched_rank() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when launched plainly."""
    env = os.environ
    return int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0"))


def share_cores() -> None:
    """Give each torchrun process on this machine its share of the cores (N × all threads would thrash)."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))


def init_distributed() -> Dist:
    """Join the torchrun process group if launched by torchrun, else a single process."""
    _, world, local_rank = launched_rank()
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if world == 1:
        return Dist(device=device)
    if cuda:
        torch.cuda.set_device(device)
    else:
        share_cores()
    # Long timeout: rank 0 may prepare a raw BraTS folder while the others wait at a barrier.
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=4))
    return Dist(dist.get_rank(), world, local_rank, device)


def barrier(d: Dist) -> None:
    """Wait for every rank (no-op in one process)."""
    if d.world > 1:
        dist.barrier()


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Element-wise sum of `values` over all ranks (identity in one process)."""
    if d.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def weights_sha256(module: torch.nn.Module) -> str:
    """Hash of every parameter and buffer, to compare ranks bit for bit."""
    return sha256_chunks(_weight_bytes(module))


def _weight_bytes(module: torch.nn.Module) -> Iterator[bytes]:
    for name, tensor in module.state_dict().items():
        yield name.encode()
        yield tensor.detach().cpu().contiguous().numpy().tobytes()


def gather_strings(value: str, d: Dist) -> list[str]:
    """Every rank's `value`, in rank order."""
    if d.world == 1:
        return [value]
    values = [None] * d.world
    dist.all_gather_object(values, value)
    return values


def shutdown(d: Dist) -> None:
    """Leave the process group, if one was joined."""
    if d.world > 1:
        dist.destroy_process_group()
