"""``vidlearn models``, ``summary`` and ``export``: what the models are and how much they cost."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXPORT_FORMATS = ("onnx", "torchscript", "exported")


def parse_input_shape(text: str) -> tuple[int, int, int, int]:
    from vidlearn.analysis import parse_input_shape as parse

    return parse(text)


def register(subparsers) -> None:
    m = subparsers.add_parser("models", help="list the registered models with their default inputs")
    m.set_defaults(func=run_models)

    s = subparsers.add_parser(
        "summary", help="per-layer output size, receptive field, parameters and FLOPs of a model"
    )
    s.add_argument("model", metavar="MODEL")
    s.add_argument(
        "--input",
        type=parse_input_shape,
        metavar="CxTxHxW",
        help="clip shape, e.g. 3x16x112x112 (default: the model's own)",
    )
    s.add_argument("--num-classes", type=int, default=400)
    s.add_argument(
        "--no-receptive-fields", action="store_true", help="skip measuring receptive fields (faster)"
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_summary)

    e = subparsers.add_parser(
        "export",
        help="export a trained checkpoint (or a fresh registered model) to ONNX, TorchScript or torch.export",
    )
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a .safetensors checkpoint or run folder")
    source.add_argument("--model", help="a registered model name (untrained weights)")
    e.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    e.add_argument("--out", type=Path, required=True, metavar="FILE")
    e.add_argument(
        "--input",
        type=parse_input_shape,
        metavar="CxTxHxW",
        help="clip shape to trace with (default: the checkpoint's or model's)",
    )
    e.add_argument("--num-classes", type=int, default=400, help="with --model")
    e.set_defaults(func=run_export)


def run_models(args: argparse.Namespace) -> int:
    from vidlearn.models import list_models, model_info
    from vidlearn.viz.console import console, table

    rows = []
    for name in list_models():
        info = model_info(name)
        rows.append((name, "x".join(map(str, info.default_input)), info.description))
    console().print(table(("model", "default input CxTxHxW", "description"), rows))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from vidlearn.analysis import summarize
    from vidlearn.engine.export import model_for_export
    from vidlearn.viz.console import console

    net, shape = model_for_export(model=args.model, num_classes=args.num_classes, input_shape=args.input)
    summary = summarize(net, shape, receptive_fields=not args.no_receptive_fields)
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        console().print(
            summary.format_table(title=f"{args.model}, input {'x'.join(map(str, shape))} (C x T x H x W)")
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from vidlearn.engine.export import export_model, model_for_export

    net, shape = model_for_export(args.checkpoint, args.model, args.num_classes, args.input)
    path = export_model(net, shape, args.out, args.format)
    print(f"{path} ({args.format}, input 1x{'x'.join(map(str, shape))}, output logits)")
    return 0
