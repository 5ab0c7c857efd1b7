"""Models by name, for the command line.

The library itself builds models by calling their classes or builder functions; this
registry only lets the CLI (and checkpoints) refer to a model by a name and options. A model
class whose constructor is ``(num_classes, **options)`` is registered as it is (its signature is
the options); a builder function is registered only where it does real work (a preset's fixed
layers, a variant looked up by name, a backbone built for the model).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from vidlearn.errors import BadArgumentError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the CLI needs to know about a registered model.

    ``default_input`` is one clip's shape ``(C, T, H, W)``; ``options`` are the builder's keyword
    arguments besides ``num_classes``, with their defaults.
    """

    name: str
    default_input: tuple[int, int, int, int]
    description: str
    options: dict[str, object]


_builders: dict[str, Builder] = {}
_infos: dict[str, ModelInfo] = {}


def register_model(
    name: str, default_input: tuple[int, int, int, int], description: str
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build(num_classes, **options) -> nn.Module`` (a model class or a
    builder function) under ``name``; returns ``build`` unchanged, so one class may be registered
    under several names (``register_model(...)(X3D)``)."""

    def register(build: Builder) -> Builder:
        if name in _builders:
            raise BadArgumentError(f"model name {name!r} is registered twice")
        if len(default_input) != 4:
            raise BadArgumentError(f"default_input of {name!r} must be (C, T, H, W), got {default_input!r}")
        _builders[name] = build
        _infos[name] = ModelInfo(name, tuple(default_input), description, _options(name, build))
        return build

    return register


def _options(name: str, build: Builder) -> dict[str, object]:
    """The keyword options of ``build`` after ``num_classes``, with their defaults (for a class: of
    its constructor, ``self`` excluded)."""
    params = list(inspect.signature(build).parameters.values())
    if not params or params[0].name != "num_classes":
        raise BadArgumentError(f"the builder of {name!r} must take num_classes as its first argument")
    options = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
            raise BadArgumentError(
                f"option {param.name!r} of {name!r} needs a default value (the CLI builds models from options alone)"
            )
        options[param.name] = param.default
    return options


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_builders)


def model_info(name: str) -> ModelInfo:
    """Default input, description and options of the model called ``name``."""
    _check_name(name)
    return _infos[name]


def create_model(name: str, num_classes: int, **options: object) -> nn.Module:
    """Build the model called ``name`` with ``num_classes`` outputs and builder ``options``."""
    _check_name(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise BadArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    unknown = sorted(set(options) - set(_infos[name].options))
    if unknown:
        valid = ", ".join(_infos[name].options) or "none"
        raise BadArgumentError(f"model {name!r} has no option {', '.join(unknown)}; its options are: {valid}")
    return _builders[name](num_classes, **options)


def _check_name(name: str) -> None:
    if name not in _builders:
        raise BadArgumentError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
