"""Distributed data parallel under ``torchrun``: gloo on CPU, NCCL on GPU, multi-node through
torchrun's rendezvous. Without torchrun everything here is a no-op on one process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_environment() -> Distributed:
        """Read torchrun's variables and join the process group (once per process)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return Distributed()
        if not torch_dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch_dist.init_process_group(backend=backend)
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return Distributed(
            torch_dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), torch_dist.get_world_size()
        )

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.enabled:
            return model
        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all processes."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        if torch_dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        torch_dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (the same list on every process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        """Wait until every process gets here (for example, until rank 0 has written a file)."""
        if self.enabled:
            torch_dist.barrier()

    def close(self) -> None:
        """Leave the process group when the job is done: every process first waits for the others
        (a barrier), because destroying it while a peer is still in a collective or in its own
        shutdown can hang that peer (pytorch/pytorch#75097; seen here: rank 1 of a finished gloo
        run hung in its exit)."""
        if self.enabled and torch_dist.is_initialized():
            torch_dist.barrier()
            torch_dist.destroy_process_group()


@contextlib.contextmanager
def distributed_job() -> Iterator[Distributed]:
    """The process group of one job (``Distributed.from_environment``), left with ``close`` when the
    job ends normally. After an error it is not destroyed: the other processes may be inside a
    collective that will never finish, and torchrun stops them when this process exits."""
    dist = Distributed.from_environment()
    yield dist
    dist.close()
