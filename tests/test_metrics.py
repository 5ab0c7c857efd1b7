"""Evaluation metrics against hand-computed numbers (the arithmetic is in the comments).

Logits are written as ``log(p)``: softmax of ``log(p)`` is ``p`` itself when ``p`` sums to 1, so
every probability below can be checked by eye.
"""

from __future__ import annotations

import json
import math

import matplotlib.image
import numpy as np
import pytest
import torch

from vidlearn.engine.metrics import (
    aggregate_views,
    confusion_matrix,
    evaluate_views,
    mean_class_accuracy,
    per_class_report,
    predictions,
    softmax,
    topk_accuracy,
)
from vidlearn.errors import BadArgumentError
from vidlearn.viz.confusion import plot_confusion, row_normalized

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --- The running example: 3 videos x 2 clips x 1 crop, K = 3 classes -------------------------
#
# view           probabilities        label  view argmax  view correct?
# a, clip 0      0.6  0.3  0.1          0        0            yes
# a, clip 1      0.3  0.5  0.2          0        1            no
# b, clip 0      0.1  0.8  0.1          1        1            yes
# b, clip 1      0.5  0.4  0.1          1        0            no
# c, clip 0      0.7  0.1  0.2          2        0            no
# c, clip 1      0.2  0.2  0.6          2        2            yes
#
# clip top-1 = 3 correct / 6 views = 0.5
# clip top-2: the true class is 2nd in a1 (0.5 > 0.3 > 0.2), b1 (0.5 > 0.4), c0 (0.7 > 0.2 > 0.1),
#   so all 6 views are correct at k = 2 -> 1.0
#
# video means ("prob"):
# a = ((0.6+0.3)/2, (0.3+0.5)/2, (0.1+0.2)/2) = (0.45, 0.40, 0.15) -> 0, label 0: correct
# b = ((0.1+0.5)/2, (0.8+0.4)/2, (0.1+0.1)/2) = (0.30, 0.60, 0.10) -> 1, label 1: correct
# c = ((0.7+0.2)/2, (0.1+0.2)/2, (0.2+0.6)/2) = (0.45, 0.15, 0.40) -> 0, label 2: wrong
# video top-1 = 2/3, while clip top-1 = 1/2.
#
# video-level confusion (rows true, columns predicted): a 0->0, b 1->1, c 2->0
# [[1, 0, 0],
#  [0, 1, 0],
#  [1, 0, 0]]
# precision = (1/2, 1/1, 0 [never predicted]); recall = (1, 1, 0); support = (1, 1, 1)
# F1 class 0 = 2 * 0.5 * 1 / 1.5 = 2/3; class 1 = 1; class 2 = 0
# mean class accuracy = (1 + 1 + 0) / 3 = 2/3

RUNNING_PROBS = np.array(
    [
        [0.6, 0.3, 0.1],
        [0.3, 0.5, 0.2],
        [0.1, 0.8, 0.1],
        [0.5, 0.4, 0.1],
        [0.7, 0.1, 0.2],
        [0.2, 0.2, 0.6],
    ]
)
RUNNING_LOGITS = np.log(RUNNING_PROBS)
RUNNING_LABELS = np.array([0, 0, 1, 1, 2, 2])
RUNNING_IDS = np.array(["a", "a", "b", "b", "c", "c"])
RUNNING_NAMES = ("run", "jump", "swim")
RUNNING_VIDEO_PROBS = np.array([[0.45, 0.40, 0.15], [0.30, 0.60, 0.10], [0.45, 0.15, 0.40]])


# --- softmax ------------------------------------------------------------------------------------


def test_softmax_of_log_probabilities_is_the_probabilities():
    np.testing.assert_allclose(softmax(RUNNING_LOGITS), RUNNING_PROBS, atol=1e-12)


def test_softmax_survives_huge_logits():
    # exp(1000) overflows; shifted by the row max, the row is (0, -1000) -> (1, e^-1000 ~ 0).
    np.testing.assert_allclose(softmax([[1000.0, 0.0]]), [[1.0, 0.0]], atol=1e-300)


# --- aggregate_views ------------------------------------------------------------------------------


def test_aggregate_prob_mode_averages_probabilities_per_video():
    videos = aggregate_views(RUNNING_LOGITS, RUNNING_IDS, RUNNING_LABELS)
    assert videos.mode == "prob"
    assert videos.video_ids.tolist() == ["a", "b", "c"]
    assert videos.labels.tolist() == [0, 1, 2]
    assert videos.views_per_video.tolist() == [2, 2, 2]
    np.testing.assert_allclose(videos.scores, RUNNING_VIDEO_PROBS, atol=1e-12)


def test_aggregate_without_labels_returns_no_labels():
    videos = aggregate_views(RUNNING_LOGITS, RUNNING_IDS)
    assert videos.labels is None
    np.testing.assert_allclose(videos.scores, RUNNING_VIDEO_PROBS, atol=1e-12)


def test_aggregate_interleaved_unsorted_ids_sorts_videos():
    # The same six views shuffled: c1, a0, b1, c0, b0, a1. Integer ids 30 (c), 10 (a), 20 (b) are
    # sorted numerically to 10, 20, 30, i.e. a, b, c, so the means are the running example's.
    order = [5, 0, 3, 4, 2, 1]
    integer_ids = np.array([10, 10, 20, 20, 30, 30])
    videos = aggregate_views(RUNNING_LOGITS[order], integer_ids[order], RUNNING_LABELS[order])
    assert videos.video_ids.tolist() == [10, 20, 30]
    assert videos.labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(videos.scores, RUNNING_VIDEO_PROBS, atol=1e-12)


def test_prob_and_logit_averaging_predict_different_classes():
    # One video, 3 views, 2 classes.
    # view 0: logits (0, ln 99)  -> probabilities (0.01, 0.99)
    # view 1: logits (ln 3, 0)   -> probabilities (0.75, 0.25)
    # view 2: logits (ln 3, 0)   -> probabilities (0.75, 0.25)
    # "prob":  (0.01 + 0.75 + 0.75) / 3 = 1.51 / 3 = 0.50333 for class 0,
    #          (0.99 + 0.25 + 0.25) / 3 = 1.49 / 3 = 0.49667 for class 1  -> class 0
    # "logit": (0 + ln 3 + ln 3) / 3 = 2 ln 3 / 3 = 0.732408 for class 0,
    #          (ln 99 + 0 + 0) / 3   = ln 99 / 3  = 1.531707 for class 1  -> class 1
    logits = np.array([[0.0, math.log(99)], [math.log(3), 0.0], [math.log(3), 0.0]])
    ids = ["v", "v", "v"]
    by_prob = aggregate_views(logits, ids, mode="prob")
    by_logit = aggregate_views(logits, ids, mode="logit")
    np.testing.assert_allclose(by_prob.scores, [[1.51 / 3, 1.49 / 3]], atol=1e-12)
    np.testing.assert_allclose(by_logit.scores, [[0.732408, 1.531707]], atol=1e-6)
    assert predictions(by_prob.scores).tolist() == [0]
    assert predictions(by_logit.scores).tolist() == [1]


def test_aggregate_rejects_conflicting_labels_naming_the_video():
    labels = np.array([0, 0, 1, 2, 2, 2])  # b's views say 1 and 2
    with pytest.raises(BadArgumentError, match=r"video 'b' has views labelled"):
        aggregate_views(RUNNING_LOGITS, RUNNING_IDS, labels)


def test_aggregate_rejects_unknown_mode_and_bad_shapes():
    with pytest.raises(BadArgumentError, match="aggregation mode"):
        aggregate_views(RUNNING_LOGITS, RUNNING_IDS, mode="max")
    with pytest.raises(BadArgumentError, match="one id per view"):
        aggregate_views(RUNNING_LOGITS, RUNNING_IDS[:5])
    with pytest.raises(BadArgumentError, match="N x K"):
        aggregate_views(RUNNING_LOGITS[0], RUNNING_IDS[:1])
    with pytest.raises(BadArgumentError, match="NaN"):
        aggregate_views([[0.0, float("nan")]], ["a"])


# --- topk_accuracy --------------------------------------------------------------------------------


def test_topk_on_hand_example():
    # K = 4. Rank of the true class in each row (0 = best):
    # row 0: scores (4, 3, 2, 1), label 0 -> rank 0
    # row 1: scores (4, 3, 2, 1), label 1 -> rank 1
    # row 2: scores (1, 2, 3, 4), label 1 -> rank 2 (4 and 3 are above 2)
    # row 3: scores (1, 2, 3, 4), label 0 -> rank 3
    # top-1 = 1/4, top-2 = 2/4, top-3 = 3/4, top-4 = 4/4
    scores = np.array([[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4]], dtype=float)
    labels = np.array([0, 1, 1, 0])
    assert topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == {1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0}


def test_top5_with_fewer_than_5_classes_is_clamped_to_all_classes():
    # K = 3 < 5: every true class is among "the top 5", so top-5 = 1.0 even for the wrong views.
    accuracy = topk_accuracy(RUNNING_LOGITS, RUNNING_LABELS)
    assert accuracy == {1: 0.5, 5: 1.0}
    # and top-2 is already 1.0 here (see the running example's table)
    assert topk_accuracy(RUNNING_LOGITS, RUNNING_LABELS, ks=(2,)) == {2: 1.0}


def test_topk_ties_go_to_the_lower_class_index():
    # Scores (1, 1, 0): classes 0 and 1 tie; class 0 ranks first, as argmax picks it.
    # label 1 -> rank 1: wrong at k = 1, right at k = 2. label 0 -> rank 0.
    assert topk_accuracy([[1.0, 1.0, 0.0]], [1], ks=(1, 2)) == {1: 0.0, 2: 1.0}
    assert topk_accuracy([[1.0, 1.0, 0.0]], [0], ks=(1,)) == {1: 1.0}


def test_topk_rejects_bad_k_and_labels():
    with pytest.raises(BadArgumentError, match="k must be a positive integer"):
        topk_accuracy(RUNNING_LOGITS, RUNNING_LABELS, ks=(0,))
    with pytest.raises(BadArgumentError, match="outside 0 .. 2"):
        topk_accuracy(RUNNING_LOGITS, [0, 0, 1, 1, 2, 3])
    with pytest.raises(BadArgumentError, match="length 6"):
        topk_accuracy(RUNNING_LOGITS, [0, 0, 1])


# --- confusion matrix and per-class report --------------------------------------------------------

# labels = (0, 0, 0, 1, 1, 2), predictions = (0, 1, 0, 1, 2, 2)
# true 0 -> predicted 0, 1, 0 : row (2, 1, 0)
# true 1 -> predicted 1, 2    : row (0, 1, 1)
# true 2 -> predicted 2       : row (0, 0, 1)
# column sums (2, 2, 2), row sums = support (3, 2, 1)
# precision = (2/2, 1/2, 1/2) = (1, 0.5, 0.5)
# recall    = (2/3, 1/2, 1/1)
# F1 class 0 = 2 * 1 * (2/3) / (1 + 2/3) = (4/3) / (5/3) = 0.8
# F1 class 1 = 2 * 0.5 * 0.5 / 1 = 0.5
# F1 class 2 = 2 * 0.5 * 1 / 1.5 = 2/3
# mean class accuracy = (2/3 + 1/2 + 1) / 3 = (13/6) / 3 = 13/18
SMALL_LABELS = [0, 0, 0, 1, 1, 2]
SMALL_PRED = [0, 1, 0, 1, 2, 2]


def test_confusion_rows_are_true_classes_columns_predicted():
    confusion = confusion_matrix(SMALL_PRED, SMALL_LABELS, num_classes=3)
    assert confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_report_on_hand_example():
    report = per_class_report(confusion_matrix(SMALL_PRED, SMALL_LABELS, num_classes=3))
    np.testing.assert_allclose(report.precision, [1.0, 0.5, 0.5])
    np.testing.assert_allclose(report.recall, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(report.f1, [0.8, 0.5, 2 / 3])
    assert report.support.tolist() == [3, 2, 1]
    assert report.mean_class_accuracy == pytest.approx(13 / 18)


def test_mean_class_accuracy_skips_a_class_without_support():
    # K = 4, labels (0, 0, 1, 2), predictions (0, 3, 1, 1). Class 3 is predicted once, never true.
    # rows: true 0 -> (1, 0, 0, 1); true 1 -> (0, 1, 0, 0); true 2 -> (0, 1, 0, 0); true 3 -> zeros
    # recall = (1/2, 1, 0, undefined -> 0), support = (2, 1, 1, 0)
    # mean over supported classes 0, 1, 2 = (0.5 + 1 + 0) / 3 = 0.5
    # (averaging over all 4 classes would give 1.5 / 4 = 0.375)
    # precision: class 1 = 1/2 (column 1 holds 1 hit of 2), class 2 = 0 (never predicted),
    #            class 3 = 0/1 = 0; F1 class 3 = 0
    confusion = confusion_matrix([0, 3, 1, 1], [0, 0, 1, 2], num_classes=4)
    assert confusion.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert mean_class_accuracy(confusion) == pytest.approx(0.5)
    report = per_class_report(confusion)
    np.testing.assert_allclose(report.recall, [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(report.precision, [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(report.f1, [2 / 3, 2 / 3, 0.0, 0.0])
    assert report.support.tolist() == [2, 1, 1, 0]


def test_mean_class_accuracy_of_an_empty_matrix_is_an_error():
    with pytest.raises(BadArgumentError, match="no samples"):
        mean_class_accuracy(np.zeros((3, 3), dtype=np.int64))


def test_confusion_rejects_out_of_range_predictions():
    with pytest.raises(BadArgumentError, match="pred holds class 3"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)


# --- evaluate_views -------------------------------------------------------------------------------


def evaluate_running_example():
    return evaluate_views(
        RUNNING_LOGITS, RUNNING_LABELS, RUNNING_IDS, num_clips=2, num_crops=1, class_names=RUNNING_NAMES
    )


def test_evaluate_views_clip_and_video_accuracy_differ():
    result = evaluate_running_example()
    assert result.clip_top1 == pytest.approx(0.5)
    assert result.clip_top5 == 1.0
    assert result.video_top1 == pytest.approx(2 / 3)
    assert result.video_top5 == 1.0
    assert result.mean_class_accuracy == pytest.approx(2 / 3)
    assert result.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    np.testing.assert_allclose(result.precision, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(result.recall, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(result.f1, [2 / 3, 1.0, 0.0])
    assert result.support.tolist() == [1, 1, 1]
    assert (result.num_videos, result.num_views, result.num_clips, result.num_crops) == (3, 6, 2, 1)
    assert result.aggregation == "prob"


def test_evaluate_views_accepts_torch_tensors_and_shuffled_views():
    order = [3, 5, 0, 2, 4, 1]
    result = evaluate_views(
        torch.tensor(RUNNING_LOGITS[order], dtype=torch.float32, requires_grad=True),
        torch.tensor(RUNNING_LABELS[order]),
        torch.tensor([1, 1, 2, 2, 3, 3])[order],
        num_clips=2,
        num_crops=1,
        class_names=RUNNING_NAMES,
    )
    assert result.clip_top1 == pytest.approx(0.5)
    assert result.video_top1 == pytest.approx(2 / 3)
    assert result.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_evaluate_views_aggregation_mode_changes_video_accuracy():
    # The 3-view video from test_prob_and_logit_averaging_predict_different_classes, true class 0,
    # seen as 3 clips x 1 crop: "prob" predicts 0 (right), "logit" predicts 1 (wrong).
    # Each view alone: view 0 predicts 1, views 1 and 2 predict 0 -> clip top-1 = 2/3 either way.
    logits = np.array([[0.0, math.log(99)], [math.log(3), 0.0], [math.log(3), 0.0]])
    common = dict(labels=[0, 0, 0], video_ids=["v"] * 3, num_clips=3, num_crops=1, class_names=("x", "y"))
    by_prob = evaluate_views(logits, mode="prob", **common)
    by_logit = evaluate_views(logits, mode="logit", **common)
    assert (by_prob.clip_top1, by_logit.clip_top1) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (by_prob.video_top1, by_logit.video_top1) == (1.0, 0.0)
    assert by_logit.aggregation == "logit"
    assert by_logit.confusion.tolist() == [[0, 1], [0, 0]]


def test_evaluate_views_counts_views_as_clips_times_crops():
    # 2 videos x 2 clips x 3 crops = 12 views; every view of video 0 prefers class 0, of video 1
    # class 1 -> everything is right.
    logits = np.array([[2.0, 0.0]] * 6 + [[0.0, 2.0]] * 6)
    per_view = [0] * 6 + [1] * 6  # labels and video ids coincide here
    result = evaluate_views(logits, per_view, per_view, num_clips=2, num_crops=3, class_names=("x", "y"))
    assert (result.num_videos, result.num_views, result.num_clips, result.num_crops) == (2, 12, 2, 3)
    assert (result.clip_top1, result.video_top1, result.mean_class_accuracy) == (1.0, 1.0, 1.0)


def test_evaluate_views_rejects_a_video_with_the_wrong_number_of_views():
    # num_clips=2 x num_crops=1 = 2 views each, but b has 3 (and c only 1).
    ids = ["a", "a", "b", "b", "b", "c"]
    labels = [0, 0, 1, 1, 1, 2]
    expected = r"video 'b' has 3 views, expected 2 \(num_clips=2 x num_crops=1\)"
    with pytest.raises(BadArgumentError, match=expected):
        evaluate_views(RUNNING_LOGITS, labels, ids, num_clips=2, num_crops=1, class_names=RUNNING_NAMES)


def test_evaluate_views_rejects_wrong_number_of_class_names():
    with pytest.raises(BadArgumentError, match="2 class names given for 3 classes"):
        evaluate_views(RUNNING_LOGITS, RUNNING_LABELS, RUNNING_IDS, 2, 1, class_names=("run", "jump"))


def test_to_json_is_plain_and_names_every_number():
    result = evaluate_running_example()
    plain = json.loads(json.dumps(result.to_json()))
    assert plain["clip_top1"] == pytest.approx(0.5)
    assert plain["clip_top5"] == 1.0
    assert plain["video_top1"] == pytest.approx(2 / 3)
    assert plain["video_top5"] == 1.0
    assert plain["mean_class_accuracy"] == pytest.approx(2 / 3)
    assert (plain["num_videos"], plain["num_views"], plain["num_clips"], plain["num_crops"]) == (3, 6, 2, 1)
    assert plain["aggregation"] == "prob"
    assert plain["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    run, _, swim = plain["per_class"]
    assert run == {"class": "run", "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert swim == {"class": "swim", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# --- plot_confusion -------------------------------------------------------------------------------


def test_row_normalized_divides_each_row_by_its_total():
    # rows (2, 1, 0) / 3, (0, 1, 1) / 2, and an empty row that stays 0
    np.testing.assert_allclose(
        row_normalized(np.array([[2, 1, 0], [0, 1, 1], [0, 0, 0]])),
        [[2 / 3, 1 / 3, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]],
    )


@pytest.mark.parametrize("num_classes, normalize", [(3, True), (3, False), (20, True), (25, False)])
def test_plot_confusion_writes_a_readable_png(tmp_path, num_classes, normalize):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, size=(num_classes, num_classes))
    names = [f"class_with_a_long_name_{index}" for index in range(num_classes)]
    path = tmp_path / "confusion.png"
    returned = plot_confusion(confusion, names, path, title="video level", normalize=normalize)
    assert returned == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]  # no temporary file left


def test_plot_confusion_replaces_an_existing_file(tmp_path):
    path = tmp_path / "confusion.png"
    path.write_bytes(b"old")
    plot_confusion([[1, 0], [0, 1]], ["x", "y"], path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_confusion_rejects_mismatched_names_and_missing_folder(tmp_path):
    with pytest.raises(BadArgumentError, match="2 class names"):
        plot_confusion(np.eye(3, dtype=int), ["x", "y"], tmp_path / "c.png")
    with pytest.raises(BadArgumentError, match="does not exist"):
        plot_confusion(np.eye(2, dtype=int), ["x", "y"], tmp_path / "missing" / "c.png")
