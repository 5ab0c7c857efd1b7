"""Prediction on new videos from nothing but a checkpoint: top-k labels, and a per-window timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidlearn.data.dataset import Normalization, read_clip
from vidlearn.data.samplers import ClipSpec, sliding_windows, tsn_segments, uniform_clips
from vidlearn.data.transforms import test_views
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.inputs import prediction_views
from vidlearn.engine.modeling import model_from_record
from vidlearn.engine.runtime import inference_model, pick_device
from vidlearn.io import open_video
from vidlearn.progress import progress_bar


@dataclass
class Window:
    start: float
    end: float
    label: str
    probability: float


@dataclass
class Prediction:
    """Top-k classes of one video (probabilities averaged over its views), and optionally a timeline."""

    path: str
    top: list[tuple[str, float]]
    views: int
    timeline: list[Window] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out["top"] = [{"label": label, "probability": p} for label, p in self.top]
        return out


class Predictor:
    """A trained model with its input recipe, loaded from a checkpoint file or run folder."""

    def __init__(self, checkpoint: str | Path, device: str = "auto"):
        loaded = load_checkpoint(checkpoint)
        self.record = loaded.record
        self.device = pick_device(device)
        self.model: nn.Module = model_from_record(self.record)
        self.model.load_state_dict(loaded.model)
        self.model = inference_model(self.model.to(self.device), self.device)
        self.class_names: list[str] = self.record["class_names"]
        spec = self.record["input"]
        config = self.record["config"]
        self.spec = ClipSpec(
            num_frames=spec["num_frames"],
            stride=spec["stride"],
            target_fps=spec["target_fps"],
            num_clips=config.get("test_clips", 1),
            num_crops=config.get("test_crops", 1),
            size=spec["size"],
            short_side=spec["short_side"],
            sampling=config.get("sampling", "clip"),
        )
        self.mean = tuple(spec["normalization"]["mean"])
        self.std = tuple(spec["normalization"]["std"])
        self.flow_views = prediction_views(config, self.spec, Normalization(self.mean, self.std))

    @torch.no_grad()
    def probabilities(self, video, clips) -> np.ndarray:
        """Class probabilities of each clip (``len(clips) x K``), averaged over its crops."""
        out = []
        for clip in clips:
            if self.flow_views is not None:
                views = torch.stack(self.flow_views.test_tensors(str(video.path), video, clip))
            else:
                views = torch.stack(test_views(read_clip(video, clip), self.spec, self.mean, self.std))
            out.append(torch.softmax(self.model(views.to(self.device)).float(), dim=1).mean(0).cpu().numpy())
        return np.stack(out)

    def predict(self, path: str | Path, topk: int = 5, window_step: float | None = None) -> Prediction:
        """Top-k over ``num_clips x num_crops`` views; with ``window_step`` (seconds) also a timeline of
        dense windows, each labelled with its most probable class."""
        with open_video(path, size=self.spec.short_side, threads=0) as video:
            fps = video.info.fps
            if self.spec.sampling == "segments":
                clips = [tsn_segments(len(video), self.spec.num_frames)]
            else:
                clips = uniform_clips(len(video), self.spec, video_fps=fps)
            probs = self.probabilities(video, clips).mean(0)
            order = np.argsort(-probs)[: min(topk, len(probs))]
            prediction = Prediction(
                str(path),
                [(self.class_names[i], float(probs[i])) for i in order],
                views=len(clips) * self.spec.num_crops,
            )
            if window_step:
                times = video.frame_times()
                step = max(1, int(round(window_step * fps)))
                windows = sliding_windows(len(video), self.spec, step, video_fps=fps)
                window_probs = self.probabilities(video, windows)
                for clip, p in zip(windows, window_probs):
                    best = int(p.argmax())
                    end = times[clip.end] + 1 / fps
                    prediction.timeline.append(
                        Window(float(times[clip.start]), float(end), self.class_names[best], float(p[best]))
                    )
        return prediction


def predict(
    checkpoint: str | Path,
    videos: Sequence[str | Path],
    topk: int = 5,
    window_step: float | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[Prediction]:
    predictor = Predictor(checkpoint, device)
    results = []
    with progress_bar(len(videos), "predicting", enabled=progress and len(videos) > 1) as advance:
        for path in videos:
            results.append(predictor.predict(path, topk, window_step))
            advance()
    return results
