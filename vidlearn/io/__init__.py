"""Video in and out: probing, frame-exact decoding (by index or time), chunked reading, writing.

Frames are uint8 ``T x H x W x 3`` RGB arrays, upright (display rotation applied). A frame index
is the k-th presented frame of the first video stream. Nothing outside this package touches a
decoding backend.
"""

from vidlearn.io._pyav import short_side_size
from vidlearn.io.video import (
    VideoInfo,
    VideoReader,
    check_frame_indices,
    iter_chunks,
    open_video,
    probe,
    read_frames,
)
from vidlearn.io.writer import write_video

__all__ = [
    "short_side_size",
    "VideoInfo",
    "VideoReader",
    "check_frame_indices",
    "iter_chunks",
    "open_video",
    "probe",
    "read_frames",
    "write_video",
]
