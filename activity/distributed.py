"""Running ``extract``, ``train`` and ``evaluate`` over several processes launched by ``torchrun``.

Plain ``torch.distributed`` with the standard ``env://`` rendezvous: ``torchrun``
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
in each process it starts, and :func:`session` joins the process group they
describe. Without torchrun (or with one process) nothing here imports
``torch.distributed`` and every helper of :class:`DistInfo` is a pass-through,
so a single-process run is unchanged.

How the work is split:

- extraction: :meth:`DistInfo.shard` gives each rank a deterministic share of
  the videos (sorted unique paths, every ``world_size``-th from ``rank``); each
  rank writes only its own cache entries (one file per video, written
  atomically), so a dead rank leaves the others' entries intact and a re-run
  extracts only what is missing;
- training: :class:`ParallelTraining` wraps the temporal model in
  ``DistributedDataParallel``, orders each epoch with a ``DistributedSampler``
  and averages the metrics over the ranks, so every rank takes the same
  early-stopping decision;
- small results (counts, skipped files, probabilities) travel as Python objects
  with :meth:`DistInfo.all_gather` and :meth:`DistInfo.gather`.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterator, Sequence, TypeVar

from activity.errors import ActivityError, first_line

if TYPE_CHECKING:
    import torch
    from torch import nn

T = TypeVar("T", bound=Hashable)

TIMEOUT_ENV = "ACTIVITY_DIST_TIMEOUT"
DEFAULT_TIMEOUT_MIN = 120  # ranks wait at most this long for each other (e.g. for the slowest shard to finish)


def launched_world_size() -> int:
    """Processes launched together (``$WORLD_SIZE``, set by torchrun); 1 without torchrun."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched_rank() -> int:
    """This process's global rank (``$RANK``, set by torchrun); 0 without torchrun."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands among the processes torchrun launched.

    The default is a single process: every method then returns its input (or
    a one-element list) without touching ``torch.distributed``.

    Attributes:
        rank: global rank, 0 to ``world_size - 1``.
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        backend: ``gloo``, ``cpu:gloo,cuda:nccl`` or None for a single process.
        device: the device this process runs the backbone on (``cuda`` becomes ``cuda:LOCAL_RANK``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        """True when several processes share the work."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that prints summaries and writes result files."""
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: the sorted unique items, every ``world_size``-th from ``rank``.

        The same items give the same partition on every rank and every run,
        whatever their order. With one process, ``items`` unchanged (order and
        repeats kept).
        """
        if not self.enabled:
            return list(items)
        return sorted(set(items), key=str)[self.rank :: self.world_size]

    def leave(self) -> None:
        """All ranks leave the process group together; no collective works afterwards.

        For work that rank 0 finishes alone (the other ranks then exit at once).
        """
        if self.enabled:
            shutdown(together=True)

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the other ranks."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks (float64), the same on every rank."""
        if not self.enabled:
            return tuple(float(v) for v in values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return tuple(t.tolist())

    def mean(self, *values: float) -> tuple[float, ...]:
        """Each value averaged over the ranks, the same on every rank."""
        return tuple(v / self.world_size for v in self.sum(*values))


def _timeout():
    from datetime import timedelta

    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(text)
        if not minutes > 0:
            raise ValueError
    except ValueError:
        raise ActivityError(f"${TIMEOUT_ENV} must be a number of minutes > 0, got {text!r}") from None
    return timedelta(minutes=minutes)


def init_from_env(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun described in the environment, if it launched several processes.

    The backend follows the device: ``gloo`` for ``cpu``; for ``cuda`` each
    process takes the GPU of its ``LOCAL_RANK`` and the group gets NCCL for
    CUDA tensors beside gloo for CPU tensors (``cpu:gloo,cuda:nccl``: the
    temporal model trains on the CPU, results travel as CPU objects).

    Args:
        device: the ``--device`` given on the command line.

    Returns:
        This process's :class:`DistInfo` (a single-process one without torchrun).

    Raises:
        ActivityError: ``cuda:N`` under torchrun, or fewer GPUs than processes on this node.
    """
    world = launched_world_size()
    if world <= 1:
        return DistInfo(device=device)
    import torch
    import torch.distributed as dist

    rank = launched_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise ActivityError(f"--device {device}: under torchrun give --device cuda; each process takes the GPU of its LOCAL_RANK")
        if local_rank >= torch.cuda.device_count():
            raise ActivityError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) on this node: "
                                "start at most one process per GPU (--nproc-per-node)")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=_timeout())
        except (RuntimeError, ValueError) as e:  # rendezvous failed: unreachable MASTER_ADDR, missing variables, ...
            first = first_line(e)
            raise ActivityError(f"rank {rank}: cannot join the {backend} process group ({type(e).__name__}: {first[:200]})") from None
    return DistInfo(rank, world, local_rank, backend, str(dev))


def shutdown(*, together: bool = False) -> None:
    """Leave the process group (a no-op when none was joined).

    With ``together``, first wait until every rank gets here, so that no rank
    tears its connections down while another still uses them (PyTorch asks
    every rank to destroy the group once communication is over).
    """
    if launched_world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "cpu") -> Iterator[DistInfo]:
    """:func:`init_from_env` on entry; on exit, :func:`shutdown` (all ranks together unless an error ends this one)."""
    done = False
    try:
        yield init_from_env(device)
        done = True
    finally:
        shutdown(together=done)


class ParallelTraining:
    """What :func:`activity.temporal.train.fit` needs to train one model over all ranks.

    With one process every method is a pass-through, so training is exactly
    the single-process loop. With several:

    - the model is wrapped in ``DistributedDataParallel`` (gradients averaged over ranks);
    - each epoch's order comes from a ``DistributedSampler`` seeded with
      ``seed`` and the epoch (the same on every rank and on a resumed run);
      each rank gets ``ceil(N / world_size)`` clips (a few repeated to make the
      shares equal) in batches of ``ceil(batch_size / world_size)``, so one
      step still covers about ``batch_size`` clips and an epoch has the
      single-process number of steps;
    - training metrics are averaged and validation metrics are summed over
      the ranks' shares of the validation set, so early stopping is decided
      on the same numbers everywhere.

    Args:
        info: this process's place among the ranks.
        seed: the run's seed (shuffles the epochs).
    """

    def __init__(self, info: DistInfo | None = None, seed: int = 0) -> None:
        self.info = info or DistInfo()
        self.seed = seed

    @property
    def is_main(self) -> bool:
        """True where result files are written (rank 0)."""
        return self.info.is_main

    def wrap(self, model: "nn.Module") -> "nn.Module":
        """The module to train: ``model`` itself, or a ``DistributedDataParallel`` around it."""
        if not self.info.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        dev = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    def batch_size(self, batch_size: int) -> int:
        """Clips per step on this rank for ``batch_size`` clips per step in all."""
        return math.ceil(batch_size / self.info.world_size)

    def num_samples(self, n: int) -> int:
        """Clips this rank sees per epoch out of ``n``."""
        return math.ceil(n / self.info.world_size)

    def epoch_order(self, n: int, epoch: int) -> "torch.Tensor | None":
        """This rank's clip indices for ``epoch`` (None with one process: the loop shuffles itself)."""
        if not self.info.enabled:
            return None
        import torch
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=self.info.world_size, rank=self.info.rank,
                                     shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), dtype=torch.long)

    def mean(self, *values: float) -> tuple[float, ...]:
        """Per-rank means (over equal shares) averaged over the ranks."""
        return self.info.mean(*values)

    def evaluate(self, fn: Callable[["torch.Tensor", "torch.Tensor"], tuple[float, float]],
                 x: "torch.Tensor", y: "torch.Tensor") -> tuple[float, float]:
        """``fn(x, y) -> (mean loss, accuracy)`` over all rows: each rank computes it on its share, the sums are combined."""
        if not self.info.enabled:
            return fn(x, y)
        rows = list(range(self.info.rank, len(x), self.info.world_size))
        loss, acc = fn(x[rows], y[rows]) if rows else (0.0, 0.0)
        loss_sum, correct, n = self.info.sum(loss * len(rows), acc * len(rows), len(rows))
        return loss_sum / n, round(correct) / n  # accuracy * rows is a whole number of clips
