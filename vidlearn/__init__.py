"""vidlearn: learning from video, from decoding to the models a video-understanding course teaches."""

from vidlearn.errors import (
    AnnotationError,
    BadArgumentError,
    VideoReadError,
    VidlearnError,
)

__version__ = "0.1.0"

__all__ = ["AnnotationError", "BadArgumentError", "VideoReadError", "VidlearnError", "__version__"]
