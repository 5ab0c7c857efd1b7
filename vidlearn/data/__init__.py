"""Clips from videos: samplers (indices only), transforms, dataset formats and their index, the
``ClipDataset`` for PyTorch, and the built-in SynthActions dataset."""

from vidlearn.data.formats import FORMATS, detect_format, load_dataset
from vidlearn.data.index import IndexEntry, VideoIndex, scan
from vidlearn.data.samplers import Clip, ClipSpec, random_clip, sliding_windows, tsn_segments, uniform_clips

__all__ = [
    "FORMATS",
    "Clip",
    "ClipSpec",
    "IndexEntry",
    "VideoIndex",
    "detect_format",
    "load_dataset",
    "random_clip",
    "scan",
    "sliding_windows",
    "tsn_segments",
    "uniform_clips",
]
