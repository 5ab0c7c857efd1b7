"""Training configuration: one dataclass you can read, filled from defaults, a YAML file and
``key=value`` overrides (in that order of precedence, last wins)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from vidlearn.data.samplers import ClipSpec
from vidlearn.errors import BadArgumentError
from vidlearn.motion.flow import DEFAULT_METHOD
from vidlearn.motion.flow import METHODS as FLOW_METHODS


@dataclass
class TrainConfig:
    """Everything a training run depends on. Saved in every checkpoint's record.

    Clips: ``num_frames`` frames every ``stride`` frames (or at ``target_fps``), short side resized
    to ``short_side``, random ``size`` x ``size`` crop (random-resized from ``crop_scale``-1 of the
    area when ``crop_scale`` < 1), colour jitter of ``colour_jitter`` (0: none). Testing: ``test_clips`` x ``test_crops`` views
    per video, combined by averaging probabilities (``aggregation="prob"``) or logits.
    Optimisation (by the one training loop, ``vidlearn.engine.loop``): AdamW, linear warm-up for
    ``warmup_epochs`` then cosine decay to zero, gradient accumulation over ``grad_accum`` batches,
    gradient norm clipped at ``clip_grad``; evaluation every ``eval_every`` epochs, and
    ``best.safetensors`` holds the weights with the best ``best_metric`` (one of clip_top1,
    clip_top5, video_top1, video_top5, mean_class_accuracy).
    ``amp``: "auto" uses bf16/fp16 autocast on a GPU and none on a CPU (bf16 autocast measured far
    slower on AVX2-only CPUs), "off", "bf16" or "fp16".
    ``sampling``: "clip" (T frames at a stride) or "segments" (TSN: one frame from each of T
    segments spanning the video). ``input``: what the model sees, "rgb", "flow" (``2 x (T-1)``
    optical flow) or "rgb+flow" (``5 x T``, for ``two_stream``); flow is computed with
    ``flow_method`` on the fly, or read from ``flow_store`` (a folder made by ``vidlearn
    flow-extract``). ``prepared``: read RGB frames from a store made by ``vidlearn prepare`` (fast):
    "auto" uses the dataset's default store for ``short_side`` if there is one, "off" never, or a
    store's folder. ``label_fraction``: train on this fraction of each class's training videos
    (few-label experiments). ``val_fraction``: hold out this fraction of the training videos (whole
    recording groups, per class) as a validation split: every evaluation during training, the best
    checkpoint and early stopping use it, and the test split is evaluated once, on the best
    checkpoint, at the end (``test.json``); 0 evaluates on the test split during training, as
    before. ``patience``: stop when ``best_metric`` has not improved for this many evaluations. ``init``: a checkpoint whose matching weights start the model (2D weights
    are inflated onto 3D layers; see ``vidlearn.engine.modeling.load_initial_weights``). ``fast``: on
    a CPU, train through ``vidlearn.speed.optimize_for_training`` (channels-last, per-shape
    weight gradients; equal to the plain model up to rounding); None (default) does so for models
    of at least 2 GFLOPs per clip, where it measured faster; evaluation and prediction always use
    ``optimize_for_inference`` on a CPU (docs/model-speed.md).
    """

    model: str = "single_frame"
    data: str = "synth"
    out: str = "runs/train"
    model_args: dict[str, Any] = field(default_factory=dict)
    split: int = 1
    classes: list[str] | None = None
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    seed: int = 0
    workers: int | None = None
    num_frames: int = 16
    stride: int | None = 2
    target_fps: float | None = None
    size: int = 112
    short_side: int = 128
    hflip: bool | None = None
    crop_scale: float = 1.0
    colour_jitter: float = 0.0
    test_clips: int = 3
    test_crops: int = 1
    aggregation: str = "prob"
    eval_every: int = 1
    best_metric: str = "video_top1"
    checkpoint_every: int = 0
    max_steps_per_epoch: int | None = None
    device: str = "auto"
    amp: str = "auto"
    sampling: str = "clip"
    input: str = "rgb"
    flow_method: str = DEFAULT_METHOD
    flow_store: str | None = None
    prepared: str = "auto"
    fast: bool | None = None
    init: str | None = None
    label_fraction: float = 1.0
    val_fraction: float = 0.0
    patience: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "epochs",
            "batch_size",
            "grad_accum",
            "num_frames",
            "size",
            "short_side",
            "test_clips",
            "eval_every",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise BadArgumentError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise BadArgumentError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise BadArgumentError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.best_metric not in (
            "clip_top1",
            "clip_top5",
            "video_top1",
            "video_top5",
            "mean_class_accuracy",
        ):
            raise BadArgumentError(
                f"best_metric must be clip_top1, clip_top5, video_top1, video_top5 or mean_class_accuracy, got {self.best_metric!r}"
            )
        if self.aggregation not in ("prob", "logit"):
            raise BadArgumentError(f"aggregation must be 'prob' or 'logit', got {self.aggregation!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise BadArgumentError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.flow_method not in FLOW_METHODS:
            raise BadArgumentError(
                f"flow_method must be one of {', '.join(FLOW_METHODS)}, got {self.flow_method!r}"
            )
        if not 0 < self.label_fraction <= 1:
            raise BadArgumentError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if not 0 <= self.val_fraction < 1:
            raise BadArgumentError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.patience is not None and int(self.patience) < 1:
            raise BadArgumentError(
                f"patience must be at least 1 (or None: never stop early), got {self.patience}"
            )
        if self.input not in ("rgb", "flow", "rgb+flow"):
            raise BadArgumentError(f"input must be rgb, flow or rgb+flow, got {self.input!r}")
        if self.input != "rgb" and self.num_frames < 2:
            raise BadArgumentError(
                f"input={self.input} needs num_frames >= 2 (T-1 flow fields), got {self.num_frames}"
            )
        if self.target_fps is not None:
            self.stride = None
        if isinstance(self.prepared, bool):  # YAML reads a bare off / on as a boolean
            self.prepared = "auto" if self.prepared else "off"
        self.clip_spec(train=True)  # validates the clip geometry now rather than in a worker

    def clip_spec(self, train: bool, hflip: bool = True) -> ClipSpec:
        return ClipSpec(
            num_frames=self.num_frames,
            stride=self.stride,
            target_fps=self.target_fps,
            num_clips=1 if train or self.sampling == "segments" else self.test_clips,
            num_crops=1 if train else self.test_crops,
            size=self.size,
            short_side=self.short_side,
            hflip=hflip,
            crop_scale=self.crop_scale,
            colour_jitter=self.colour_jitter,
            sampling=self.sampling,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), **given: Any) -> TrainConfig:
    """Defaults, then the YAML file, then ``given`` keyword values, then ``key=value`` strings."""
    return load_settings(TrainConfig, path, overrides, **given)


def load_settings(kind: type, path: str | Path | None = None, overrides: Sequence[str] = (), **given: Any):
    """A settings dataclass of type ``kind`` from its defaults, then the YAML file at ``path``, then
    ``given`` keyword values (``None`` means not given), then ``key=value`` strings."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise BadArgumentError(f"{path}: config file does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise BadArgumentError(f"{path}: a config file must be a YAML mapping of key: value")
        values.update(loaded)
    values.update({k: v for k, v in given.items() if v is not None})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise BadArgumentError(f"override {item!r} must look like key=value")
        values[key.strip()] = yaml.safe_load(text)
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadArgumentError(
            f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    hints = get_type_hints(kind)
    return kind(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Numbers written as strings in YAML (``1e-3``) and ints given for floats become the declared type."""
    text = str(hint)
    try:
        if value is None or "dict" in text:
            return value
        if text.startswith("list") and isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if text.startswith("float") or text == "<class 'float'>":
            return float(value)
        if text.startswith("int") or text == "<class 'int'>":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        raise BadArgumentError(f"config key {key} expects {text}, got {value!r}") from None
    return value
