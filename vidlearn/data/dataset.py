"""Clips for training and views for testing, as a PyTorch ``Dataset`` and ``DataLoader``.

Training: one item is one random clip of one video, ``C x T x H x W`` float, with its label.
Testing: one item is one video with all its views, ``V x C x T x H x W`` with
``V = num_clips x num_crops`` (clip-major: view ``v`` is clip ``v // num_crops``, crop ``v % num_crops``).
With ``normalize=False`` the clips stay uint8 (a quarter of the bytes to move between processes
and to the device) and ``dataset.model_input(batch)`` normalises a batch where it arrives, bit for
bit as the dataset would have: the training loop reads this way.

Randomness is a pure function of (seed, epoch, item), so a run resumed at epoch e draws the same
clips as the uninterrupted run, whatever the number of workers. Each worker process opens its own
decoders, reads only the frames a clip needs (resized to the short side while decoding), and uses
one decoder thread: the workers already occupy the cores. Videos held by a prepared-data store
(``vidlearn.data.prepared``) at the clips' short side are read from it instead: the same frames,
without decoding.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vidlearn.data.index import IndexEntry, VideoIndex
from vidlearn.data.prepared import PreparedStore
from vidlearn.data.samplers import Clip, ClipSpec, random_clip, tsn_segments, uniform_clips
from vidlearn.data.transforms import KINETICS_MEAN, KINETICS_STD, normalize_clips, test_views, train_views
from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.io import open_video


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD


class ClipDataset(Dataset):
    """Clips (``train=True``) or all test views of each video (``train=False``) of a ``VideoIndex``.

    Items: ``(clip C x T x H x W, label)`` when training; ``(views V x C x T x H x W, label, video)``
    when testing. Keys may be plain positions or ``(epoch, position)`` pairs (see ``EpochSampler``).
    A video that fails to decode is reported on stderr and replaced by the next one, so training
    goes on; ``failed`` lists such paths seen by this process. ``prepared``: a store whose short
    side is the clips'; the videos it holds are read from it instead of decoded. ``normalize=False``:
    RGB clips stay uint8 until :meth:`model_input`.
    """

    def __init__(
        self,
        index: VideoIndex,
        spec: ClipSpec,
        train: bool,
        seed: int = 0,
        normalization: Normalization = Normalization(),
        prepared: PreparedStore | None = None,
        normalize: bool = True,
    ):
        if len(index) == 0:
            raise VideoReadError(index.source.root, "the dataset has no usable videos")
        if prepared is not None and prepared.settings.short_side != spec.short_side:
            raise BadArgumentError(
                f"the prepared store {prepared.folder} holds frames at short side {prepared.settings.short_side}, "
                f"the clips want {spec.short_side}: prepare with --short-side {spec.short_side}"
            )
        self.index = index
        self.spec = spec
        self.train = train
        self.seed = seed
        self.normalization = normalization
        self.prepared = prepared
        self.normalize = normalize
        self.failed: list[str] = []

    def model_input(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of items as the model takes it: uint8 clips (``normalize=False``) normalised on
        their device; float ones (normalised already, or optical flow) unchanged."""
        if batch.dtype != torch.uint8:
            return batch
        return normalize_clips(batch, self.normalization.mean, self.normalization.std)

    @property
    def reads_without_decoding(self) -> bool:
        """Whether items come from a prepared store (cheap: no decoding, no flow to compute)."""
        return self.prepared is not None

    @property
    def class_names(self) -> list[str]:
        return self.index.class_names

    @property
    def views_per_video(self) -> int:
        clips = 1 if self.spec.sampling == "segments" else self.spec.num_clips
        return clips * self.spec.num_crops

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, position = key if isinstance(key, tuple) else (0, key)
        for attempt in range(len(self.index)):
            entry = self.index[(position + attempt) % len(self.index)]
            try:
                return self._load(entry, epoch, (position + attempt) % len(self.index))
            except VideoReadError as exc:
                if entry.path not in self.failed:
                    self.failed.append(entry.path)
                    print(f"vidlearn: skipping unreadable video: {exc}", file=sys.stderr)
        raise VideoReadError(self.index.source.root, "no video in the dataset could be decoded")

    def _open(self, entry: IndexEntry):
        """The entry's video: its prepared frames when the store holds them, else a decoder."""
        prepared = self.prepared.open_if_prepared(entry.path) if self.prepared is not None else None
        if prepared is not None:
            return prepared
        return open_video(entry.path, size=self.spec.short_side, threads=1, frame_count=entry.frames)

    def _load(self, entry: IndexEntry, epoch: int, position: int):
        with self._open(entry) as video:
            first, count = segment_frames(entry, video.frame_times())
            if self.train:
                rng = np.random.default_rng([self.seed, epoch, position])
                clip = (
                    tsn_segments(count, self.spec.num_frames, rng=rng, short_policy=self.spec.short_policy)
                    if self.spec.sampling == "segments"
                    else random_clip(count, self.spec, rng, video_fps=video.info.fps)
                )
                return self.train_tensor(entry, video, clip, first, rng), entry.label
            clips = (
                [tsn_segments(count, self.spec.num_frames, short_policy=self.spec.short_policy)]
                if self.spec.sampling == "segments"
                else uniform_clips(count, self.spec, video_fps=video.info.fps)
            )
            views = [view for clip in clips for view in self.test_tensors(entry, video, clip, first)]
            return torch.stack(views), entry.label, position

    # The two hooks below turn one sampled clip into tensors; other input kinds (optical flow,
    # see vidlearn.motion.dataset) override them and keep the sampling above.

    def train_tensor(
        self, entry: IndexEntry, video, clip: Clip, first: int, rng: np.random.Generator
    ) -> torch.Tensor:
        """The training tensor ``C x T x H x W`` of one clip (``first``: the segment's first frame)."""
        mean, std = self.normalization.mean, self.normalization.std
        return train_views(read_clip(video, clip, first), self.spec, rng, mean, std, self.normalize)

    def test_tensors(self, entry: IndexEntry, video, clip: Clip, first: int) -> list[torch.Tensor]:
        """The test views (one per crop) of one clip."""
        mean, std = self.normalization.mean, self.normalization.std
        return test_views(read_clip(video, clip, first), self.spec, mean, std, self.normalize)


def segment_frames(entry: IndexEntry, frame_times: np.ndarray) -> tuple[int, int]:
    """(first frame, frame count) of the entry's segment; the whole video when it has no start/end."""
    if entry.start is None and entry.end is None:
        return 0, len(frame_times)
    start = entry.start if entry.start is not None else -np.inf
    end = entry.end if entry.end is not None else np.inf
    inside = np.flatnonzero((frame_times >= start - 1e-6) & (frame_times < end - 1e-6))
    if inside.size == 0:
        raise VideoReadError(entry.path, f"no frame between {entry.start}s and {entry.end}s")
    return int(inside[0]), int(inside.size)


def read_clip(video, clip: Clip, first_frame: int = 0) -> torch.Tensor:
    """Decode one clip's frames (uint8 ``T x H x W x 3``), zeroing padding frames."""
    frames = torch.from_numpy(video.get(clip.indices + first_frame))
    if clip.pad_mask.any():
        frames[torch.from_numpy(clip.pad_mask)] = 0
    return frames


class EpochSampler(Sampler):
    """Yields ``(epoch, position)`` keys: shuffled by (seed, epoch) when training, in order otherwise.

    With ``num_replicas > 1`` (distributed), each rank takes every ``num_replicas``-th key of the
    same permutation; when testing, keys are not padded, so no video is counted twice.
    ``skip`` drops the first keys of the epoch (set when resuming in the middle of an epoch).
    """

    def __init__(
        self,
        size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
        drop_last: bool = False,
    ):
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.num_replicas, self.drop_last = rank, num_replicas, drop_last
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return np.arange(self.size)

    def __iter__(self):
        order = self._order()
        if self.shuffle and self.num_replicas > 1:
            per_rank = (
                len(order) // self.num_replicas if self.drop_last else -(-len(order) // self.num_replicas)
            )
            order = np.resize(order, per_rank * self.num_replicas)  # wrap so every rank gets the same count
        for position in order[self.rank :: self.num_replicas][self.skip :]:
            yield self.epoch, int(position)

    def __len__(self) -> int:
        if self.shuffle and self.num_replicas > 1:
            return self.size // self.num_replicas if self.drop_last else -(-self.size // self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))


def default_workers() -> int:
    """Decoding workers: one per core (the main process mostly waits on the model step)."""
    return max(1, min(os.cpu_count() or 1, 8))


def _quiet_worker(_worker_id: int) -> None:
    # Each worker decodes one clip at a time; intra-op threads would only fight the other workers.
    # (No cv2.setNumThreads here: in a child forked after the parent used OpenCV it can deadlock.)
    torch.set_num_threads(1)


def make_loader(
    dataset: ClipDataset, batch_size: int, sampler: EpochSampler, workers: int | None = None
) -> DataLoader:
    """A DataLoader that keeps the cores busy decoding while the model computes.

    Default ``workers``: one per core when items are decoded; none (items loaded in the training
    process) when they come from a prepared store: there, moving batches between processes costs
    more than reading them (measured on 2 cores: 0.86x of model-only throughput in-process against
    0.57-0.72x with 1-2 workers; `bench/suite_e2e.py`, docs/benchmarks.md).
    """
    if workers is None:
        workers = 0 if getattr(dataset, "reads_without_decoding", False) else default_workers()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_quiet_worker if workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        # Its own generator: creating an iterator draws a seed, which must not move the global RNG
        # (a resumed run would otherwise see different dropout masks than an uninterrupted one).
        generator=torch.Generator().manual_seed(sampler.seed),
    )
