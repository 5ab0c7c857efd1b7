"""``vidlearn train``, ``eval``, ``predict``: the engine from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    t = subparsers.add_parser(
        "train",
        help="train a video classifier on clips",
        description="Train MODEL on a dataset. Settings come from the defaults, then --config FILE.yaml, then the flags, then key=value overrides (e.g. epochs=5 lr=3e-4 num_frames=8).",
    )
    t.add_argument("--model", help="registered model name (see `vidlearn models`)")
    t.add_argument(
        "--data", help="dataset folder or annotation file, or 'synth' for the built-in SynthActions"
    )
    t.add_argument("--config", type=Path, help="YAML file of settings")
    t.add_argument("--out", help="run folder for checkpoints and logs (default runs/train)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    t.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from the matching weights of this checkpoint (e.g. a pre-trained encoder, or a 2D model to inflate)",
    )
    t.add_argument("overrides", nargs="*", metavar="key=value")
    t.set_defaults(func=run_train)

    r = subparsers.add_parser(
        "pretrain",
        help="learn from videos without labels (VideoMAE masked-tubelet reconstruction)",
        description="Pre-train on the videos of --data (a dataset, whose labels are ignored, or any folder of videos). "
        "Settings: defaults, then --config FILE.yaml, then key=value overrides (encoder=tiny|small|base mask_ratio=0.9 epochs=20 ...). "
        "Fine-tune the result with `vidlearn train --model vit_video init=OUT/encoder.safetensors model_args={size: ENCODER}`.",
    )
    r.add_argument("--method", default="videomae", help="pre-training method (videomae)")
    r.add_argument("--data", help="dataset, folder of videos, or 'synth'")
    r.add_argument("--config", type=Path, help="YAML file of settings")
    r.add_argument("--out", help="run folder (default runs/pretrain)")
    r.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last finished epoch"
    )
    r.add_argument("overrides", nargs="*", metavar="key=value")
    r.set_defaults(func=run_pretrain)

    e = subparsers.add_parser("eval", help="clip and video accuracy of a checkpoint over clips x crops")
    e.add_argument(
        "--checkpoint", required=True, help="a .safetensors checkpoint or a run folder (its best.safetensors)"
    )
    e.add_argument("--data", help="dataset to test on (default: the one the model was trained on)")
    e.add_argument("--clips", type=int, help="test clips per video (default: the training run's test_clips)")
    e.add_argument(
        "--crops", type=int, choices=(1, 3), help="crops per clip: 1 centre or 3 along the long side"
    )
    e.add_argument(
        "--aggregation",
        choices=("prob", "logit"),
        help="average probabilities (default) or logits over a video's views",
    )
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--workers", type=int)
    e.add_argument(
        "--confusion", type=Path, metavar="PNG", help="write the video-level confusion matrix here"
    )
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "predict", help="top-k labels of videos, and a per-window timeline for long ones"
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--timeline", type=float, metavar="SECONDS", help="also label dense windows every SECONDS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    from vidlearn.engine.config import load_config
    from vidlearn.engine.train import train

    config = load_config(
        args.config, args.overrides, model=args.model, data=args.data, out=args.out, init=args.init
    )
    result = train(config, resume=args.resume)
    print(f"best checkpoint: {result.best_checkpoint}\nmetrics: {result.out / 'metrics.csv'}")
    if config.val_fraction > 0:
        headline = ", ".join(f"{k[5:]} {v:.3f}" for k, v in result.test.items() if k.startswith("test_"))
        print(
            f"test split, best checkpoint (epoch {result.test['epoch']}): {headline} -> {result.out / 'test.json'}"
        )
    if result.stopped_early:
        print(f"stopped early after epoch {len(result.history)} (patience {config.patience})")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from vidlearn.engine.config import load_settings
    from vidlearn.engine.pretrain import PretrainConfig, pretrain

    config = load_settings(
        PretrainConfig, args.config, args.overrides, method=args.method, data=args.data, out=args.out
    )
    result = pretrain(config, resume=args.resume)
    print(f"encoder for fine-tuning: {result.encoder_checkpoint}\nmetrics: {result.out / 'metrics.csv'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from vidlearn.engine.evaluate import evaluate_checkpoint
    from vidlearn.viz.confusion import plot_confusion
    from vidlearn.viz.console import console, table

    result = evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        num_clips=args.clips,
        num_crops=args.crops,
        aggregation=args.aggregation,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.json,
    )
    if args.confusion:
        plot_confusion(
            result.confusion,
            result.class_names,
            args.confusion,
            title=f"{Path(args.checkpoint).name}: video-level confusion",
        )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    out = console()
    out.print(
        f"{result.num_videos} videos, {result.num_views} views ({result.num_clips} clips x {result.num_crops} crops), "
        f"video scores = mean of view {'probabilities' if result.aggregation == 'prob' else 'logits'}"
    )
    out.print(
        table(
            ("metric", "value"),
            [
                ("clip top-1 (each view alone)", f"{result.clip_top1:.4f}"),
                ("clip top-5", f"{result.clip_top5:.4f}"),
                ("video top-1 (views combined)", f"{result.video_top1:.4f}"),
                ("video top-5", f"{result.video_top5:.4f}"),
                ("mean class accuracy (video)", f"{result.mean_class_accuracy:.4f}"),
            ],
        )
    )
    out.print(
        table(
            ("class", "precision", "recall", "f1", "videos"),
            [
                (name, f"{p:.3f}", f"{r:.3f}", f"{f:.3f}", int(n))
                for name, p, r, f, n in zip(
                    result.class_names, result.precision, result.recall, result.f1, result.support
                )
            ],
        )
    )
    if args.confusion:
        out.print(f"confusion matrix: {args.confusion}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from vidlearn.engine.predict import predict
    from vidlearn.viz.console import console, table

    results = predict(
        args.checkpoint, args.videos, topk=args.topk, window_step=args.timeline, progress=not args.json
    )
    if args.json:
        for prediction in results:
            print(json.dumps(prediction.to_json()))
        return 0
    out = console()
    for prediction in results:
        out.print(f"[bold]{prediction.path}[/bold] ({prediction.views} views)")
        out.print(
            table(
                ("rank", "label", "probability"),
                [(i + 1, label, f"{p:.3f}") for i, (label, p) in enumerate(prediction.top)],
            )
        )
        if prediction.timeline:
            out.print(
                table(
                    ("start s", "end s", "label", "probability"),
                    [
                        (f"{w.start:.2f}", f"{w.end:.2f}", w.label, f"{w.probability:.3f}")
                        for w in prediction.timeline
                    ],
                )
            )
    return 0
