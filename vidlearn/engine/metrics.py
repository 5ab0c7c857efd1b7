"""Classification metrics over views and videos: aggregation, top-k, confusion, per-class report.

A *view* is one clip x one crop of a video; a test video has ``V = num_clips x num_crops`` views.
The model scores every view on its own, so two accuracies exist and both are reported:

* clip accuracy: each view judged alone (``N`` views, ``N = M x V``);
* video accuracy: a video's ``V`` views combined first (``M`` videos), by averaging softmax
  probabilities (``"prob"``) or logits (``"logit"``).

Everything here is numpy; torch tensors are accepted anywhere an array is (moved to the CPU and
detached first). Shapes: ``N`` views, ``M`` videos, ``K`` classes. Ties between class scores are
broken towards the lower class index, the same rule as ``argmax``, so top-1 accuracy and the
confusion matrix always agree. See docs/evaluation.md for the definitions with worked numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidlearn.errors import BadArgumentError

AGGREGATION_MODES = ("prob", "logit")


def _to_numpy(values: object) -> np.ndarray:
    """numpy view of an array, list or torch tensor (on any device, with or without grad)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _scores_matrix(scores: object, name: str) -> np.ndarray:
    """``N x K`` float64 scores, checked: two dimensions, at least one row and column, finite."""
    array = _to_numpy(scores)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise BadArgumentError(f"{name} must be a non-empty N x K array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise BadArgumentError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise BadArgumentError(f"{name} holds NaN or infinite values")
    return array


def _class_indices(values: object, length: int, num_classes: int, name: str) -> np.ndarray:
    """``length`` int64 class indices in ``0 .. num_classes - 1``."""
    array = _to_numpy(values)
    if array.ndim != 1 or array.shape[0] != length:
        raise BadArgumentError(f"{name} must be a 1-D array of length {length}, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise BadArgumentError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    outside = (array < 0) | (array >= num_classes)
    if outside.any():
        raise BadArgumentError(
            f"{name} holds class {array[outside][0]}, outside 0 .. {num_classes - 1} ({num_classes} classes)"
        )
    return array


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise BadArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def softmax(logits: object) -> np.ndarray:
    """Row-wise softmax of ``N x K`` logits, in float64.

    The row maximum is subtracted first: ``exp`` of a logit of 1000 overflows, the shifted one
    cannot, and the result is mathematically the same.
    """
    logits = _scores_matrix(logits, "logits")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class VideoScores:
    """Views combined into one score row per video, videos in sorted id order.

    scores: ``M x K``; mean softmax probabilities (``mode="prob"``, rows sum to 1) or mean logits
        (``mode="logit"``).
    video_ids: ``M``, sorted ascending (``numpy.unique`` order).
    labels: ``M`` class index of each video, or None when no labels were given.
    views_per_video: ``M``, how many views each video had.
    mode: ``"prob"`` or ``"logit"``.
    """

    scores: np.ndarray
    video_ids: np.ndarray
    labels: np.ndarray | None
    views_per_video: np.ndarray
    mode: str


def aggregate_views(
    view_scores: object,
    video_ids: object,
    labels: object | None = None,
    mode: str = "prob",
) -> VideoScores:
    """Combine the views of each video into one score row.

    Args:
        view_scores: ``N x K`` logits, one row per view.
        video_ids: ``N`` ids (ints or strings) naming each view's video. A video's views may
            come in any order and be interleaved with other videos' views.
        labels: optional ``N`` class indices, one per view. Every view of a video must carry the
            same label; the video's label is returned in ``VideoScores.labels``.
        mode: ``"prob"`` averages ``softmax(logits)`` over a video's views; ``"logit"`` averages
            the logits themselves (equivalent to a normalised geometric mean of probabilities, so
            one very confident view weighs more than under ``"prob"``).

    Returns:
        :class:`VideoScores` with ``M`` rows, ordered by video id.

    Raises:
        BadArgumentError: unknown mode, mismatched lengths, non-finite scores, labels out of
            range, or two views of one video claiming different labels (the video is named).
    """
    if mode not in AGGREGATION_MODES:
        raise BadArgumentError(f"aggregation mode must be one of {AGGREGATION_MODES}, got {mode!r}")
    scores = _scores_matrix(view_scores, "view_scores")
    num_views, num_classes = scores.shape
    ids = _to_numpy(video_ids)
    if ids.ndim != 1 or ids.shape[0] != num_views:
        raise BadArgumentError(
            f"video_ids must be a 1-D array with one id per view ({num_views}), got shape {ids.shape}"
        )
    unique_ids, video_of_view = np.unique(ids, return_inverse=True)
    num_videos = unique_ids.shape[0]

    per_view = softmax(scores) if mode == "prob" else scores
    sums = np.zeros((num_videos, num_classes))
    np.add.at(sums, video_of_view, per_view)
    views_per_video = np.bincount(video_of_view, minlength=num_videos)
    video_scores = sums / views_per_video[:, None]

    video_labels = None
    if labels is not None:
        view_labels = _class_indices(labels, num_views, num_classes, "labels")
        video_labels = _labels_per_video(view_labels, video_of_view, unique_ids)
    return VideoScores(video_scores, unique_ids, video_labels, views_per_video, mode)


def _labels_per_video(
    view_labels: np.ndarray, video_of_view: np.ndarray, unique_ids: np.ndarray
) -> np.ndarray:
    """``M`` labels, one per video; raises if two views of one video disagree."""
    video_labels = np.empty(unique_ids.shape[0], dtype=np.int64)
    # Any view's label will do as the reference; the check below compares every view against it.
    video_labels[video_of_view] = view_labels
    disagree = view_labels != video_labels[video_of_view]
    if disagree.any():
        first = int(np.flatnonzero(disagree)[0])
        video = int(video_of_view[first])
        raise BadArgumentError(
            f"video {unique_ids[video].item()!r} has views labelled {video_labels[video]} and "
            f"{view_labels[first]}; every view of a video must carry the video's label"
        )
    return video_labels


def _rank_of_true_class(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``N`` zero-based ranks of the true class among the ``K`` scores (0 = top-1).

    Ties go to the lower class index: a class ranks above the true class if its score is higher,
    or equal with a lower index.
    """
    true_scores = scores[np.arange(scores.shape[0]), labels][:, None]
    class_index = np.arange(scores.shape[1])[None, :]
    above = (scores > true_scores) | ((scores == true_scores) & (class_index < labels[:, None]))
    return above.sum(axis=1)


def topk_accuracy(scores: object, labels: object, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose true class is among the ``k`` highest scores, for each ``k``.

    Args:
        scores: ``N x K`` scores (logits or probabilities: only their order matters).
        labels: ``N`` true class indices.
        ks: the values of ``k``. A ``k`` larger than ``K`` is clamped to ``K``, so its accuracy
            is 1.0 (all classes are "in the top k"); the returned key is still the requested
            ``k`` (top-5 over 3 classes is reported under key 5 and equals 1.0).

    Returns:
        ``{k: accuracy}`` with accuracies in ``[0, 1]``.

    Ties between scores go to the lower class index (as ``argmax`` does).
    """
    scores = _scores_matrix(scores, "scores")
    labels = _class_indices(labels, scores.shape[0], scores.shape[1], "labels")
    ks = [_positive_int(k, "k") for k in ks]
    ranks = _rank_of_true_class(scores, labels)
    return {k: float(np.mean(ranks < min(k, scores.shape[1]))) for k in ks}


def predictions(scores: object) -> np.ndarray:
    """``N`` predicted classes: ``argmax`` of ``N x K`` scores (ties to the lower index)."""
    return np.argmax(_scores_matrix(scores, "scores"), axis=1)


def confusion_matrix(pred: object, labels: object, num_classes: int) -> np.ndarray:
    """``K x K`` int64 counts: ``confusion[t, p]`` = samples of true class ``t`` predicted as ``p``.

    Rows are true classes, columns predicted classes. ``pred`` and ``labels`` are ``N`` class
    indices in ``0 .. num_classes - 1``.
    """
    num_classes = _positive_int(num_classes, "num_classes")
    pred_array = _to_numpy(pred)
    if pred_array.ndim != 1:
        raise BadArgumentError(f"pred must be a 1-D array of class indices, got shape {pred_array.shape}")
    pred_array = _class_indices(pred_array, pred_array.shape[0], num_classes, "pred")
    true_array = _class_indices(labels, pred_array.shape[0], num_classes, "labels")
    flat = np.bincount(true_array * num_classes + pred_array, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _confusion_counts(confusion: object) -> np.ndarray:
    array = _to_numpy(confusion)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise BadArgumentError(f"confusion must be a non-empty K x K array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise BadArgumentError("confusion must hold non-negative integer counts")
    return array.astype(np.int64)


def _ratio_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator``, 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def mean_class_accuracy(confusion: object) -> float:
    """Mean over classes *that have support* of per-class recall (``diag / row sum``).

    A class that never occurs as a true label has no recall and is left out of the mean, rather
    than counted as 0. Raises if the confusion matrix counts no sample at all.
    """
    counts = _confusion_counts(confusion)
    support = counts.sum(axis=1)
    if not support.any():
        raise BadArgumentError("mean class accuracy is undefined: the confusion matrix counts no samples")
    present = support > 0
    return float(np.mean(np.diag(counts)[present] / support[present]))


@dataclass(frozen=True)
class ClassReport:
    """Per-class precision, recall, F1 and support, each a length-``K`` array.

    precision[c] = confusion[c, c] / column sum (0.0 when class c was never predicted)
    recall[c]    = confusion[c, c] / row sum    (0.0 when class c never occurs: no support)
    f1[c]        = 2 P R / (P + R)              (0.0 when P + R = 0)
    support[c]   = row sum, the number of samples whose true class is c (int64)
    mean_class_accuracy: mean recall over classes with support > 0.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    mean_class_accuracy: float


def per_class_report(confusion: object) -> ClassReport:
    """Precision, recall, F1 and support per class from a ``K x K`` confusion matrix.

    Rows of ``confusion`` are true classes, columns predicted classes (as
    :func:`confusion_matrix` returns). Undefined ratios are 0.0, see :class:`ClassReport`.
    """
    counts = _confusion_counts(confusion)
    hits = np.diag(counts)
    support = counts.sum(axis=1)
    precision = _ratio_or_zero(hits, counts.sum(axis=0))
    recall = _ratio_or_zero(hits, support)
    f1 = _ratio_or_zero(2 * precision * recall, precision + recall)
    return ClassReport(precision, recall, f1, support, mean_class_accuracy(counts))


@dataclass(frozen=True)
class EvaluationResult:
    """Clip- and video-level results of one evaluation. Accuracies are fractions in ``[0, 1]``.

    clip_top1, clip_top5: top-k accuracy of every view alone, over ``num_views`` views.
    video_top1, video_top5: top-k accuracy after combining each video's views, over
        ``num_videos`` videos. Top-5 with fewer than 5 classes is top-``K``, i.e. 1.0.
    mean_class_accuracy: video level, mean recall over classes with support.
    class_names: ``K`` names, index = class.
    precision, recall, f1: ``K`` float arrays, video level (0.0 where undefined).
    support: ``K`` int array, videos per true class.
    confusion: ``K x K`` int array, video level; rows true class, columns predicted class.
    num_videos, num_views, num_clips, num_crops: counts; ``num_views = num_videos x num_clips x
        num_crops``.
    aggregation: ``"prob"`` (mean softmax probabilities) or ``"logit"`` (mean logits).
    """

    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    class_names: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray
    num_videos: int
    num_views: int
    num_clips: int
    num_crops: int
    aggregation: str

    def to_json(self) -> dict:
        """Plain dict (floats, ints, strings, lists) ready for ``json.dump``."""
        return {
            "clip_top1": self.clip_top1,
            "clip_top5": self.clip_top5,
            "video_top1": self.video_top1,
            "video_top5": self.video_top5,
            "mean_class_accuracy": self.mean_class_accuracy,
            "num_videos": self.num_videos,
            "num_views": self.num_views,
            "num_clips": self.num_clips,
            "num_crops": self.num_crops,
            "aggregation": self.aggregation,
            "per_class": [
                {
                    "class": name,
                    "precision": float(self.precision[index]),
                    "recall": float(self.recall[index]),
                    "f1": float(self.f1[index]),
                    "support": int(self.support[index]),
                }
                for index, name in enumerate(self.class_names)
            ],
            "confusion": self.confusion.tolist(),
            "confusion_layout": "rows: true class, columns: predicted class, video level",
        }


def _check_views_per_video(videos: VideoScores, num_clips: int, num_crops: int) -> None:
    """Every video must have exactly ``num_clips x num_crops`` views; the first that does not is named."""
    views_per_video = num_clips * num_crops
    wrong = np.flatnonzero(videos.views_per_video != views_per_video)
    if wrong.size:
        first = int(wrong[0])
        others = f" ({wrong.size - 1} more with a wrong count)" if wrong.size > 1 else ""
        raise BadArgumentError(
            f"video {videos.video_ids[first].item()!r} has {videos.views_per_video[first]} views, "
            f"expected {views_per_video} (num_clips={num_clips} x num_crops={num_crops}){others}"
        )


def evaluate_views(
    view_logits: object,
    labels: object,
    video_ids: object,
    num_clips: int,
    num_crops: int,
    class_names: Sequence[str],
    mode: str = "prob",
) -> EvaluationResult:
    """Clip accuracy, video accuracy and the video-level per-class report from per-view logits.

    Args:
        view_logits: ``N x K`` logits, one row per view (one clip x one crop).
        labels: ``N`` true class index of each view (a video's views share one label).
        video_ids: ``N`` ids naming each view's video, in any order.
        num_clips, num_crops: views per video are ``num_clips x num_crops``; every video must
            have exactly that many.
        class_names: ``K`` names, index = class.
        mode: how views are combined into a video, ``"prob"`` or ``"logit"``
            (see :func:`aggregate_views`).

    Raises:
        BadArgumentError: a video with the wrong number of views (named), conflicting labels
            within a video, ``len(class_names) != K``, or any invalid array.
    """
    num_clips = _positive_int(num_clips, "num_clips")
    num_crops = _positive_int(num_crops, "num_crops")
    logits = _scores_matrix(view_logits, "view_logits")
    num_classes = logits.shape[1]
    names = tuple(str(name) for name in class_names)
    if len(names) != num_classes:
        raise BadArgumentError(
            f"{len(names)} class names given for {num_classes} classes (columns of view_logits)"
        )

    videos = aggregate_views(logits, video_ids, labels, mode)
    _check_views_per_video(videos, num_clips, num_crops)

    # A view's softmax keeps the order of its logits, so clip accuracy is the same in both modes.
    clip = topk_accuracy(logits, labels, ks=(1, 5))
    video = topk_accuracy(videos.scores, videos.labels, ks=(1, 5))
    confusion = confusion_matrix(predictions(videos.scores), videos.labels, num_classes)
    report = per_class_report(confusion)
    return EvaluationResult(
        clip_top1=clip[1],
        clip_top5=clip[5],
        video_top1=video[1],
        video_top5=video[5],
        mean_class_accuracy=report.mean_class_accuracy,
        class_names=names,
        precision=report.precision,
        recall=report.recall,
        f1=report.f1,
        support=report.support,
        confusion=confusion,
        num_videos=int(videos.video_ids.shape[0]),
        num_views=int(logits.shape[0]),
        num_clips=num_clips,
        num_crops=num_crops,
        aggregation=mode,
    )
