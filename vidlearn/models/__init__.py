"""The course's video classification models, one file per family, and a registry for the CLI.

Every model takes float clips ``B x C x T x H x W`` and returns logits ``B x num_classes``; its
``features(x)`` gives the ``B x D`` representation the classifier sees. Build a model by name
(``create_model("r3d_18", num_classes=400)``) or with its family's builder
(``from vidlearn.models.resnet3d import r3d_18``).

Models are plain ``nn.Module``s made of standard layers. Their ReLUs are not in-place, so forward
and backward hooks (shape and cost analysis, saliency) see every layer's output unmodified.
"""

# Importing each family module registers its models.
from vidlearn.models import c3d, course, fovea, fusion, i3d, mvit, nonlocal_net, recurrent, resnet3d, slowfast, timesformer, tsn, two_stream, vit_video, vivit, x3d  # noqa: F401
from vidlearn.models.blocks import ConvTower
from vidlearn.models.c3d import C3D
from vidlearn.models.fovea import FoveaContextEncoder
from vidlearn.models.fusion import EarlyFusion, LateFusionFC, LateFusionPool, SingleFrame, SlowFusion
from vidlearn.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from vidlearn.models.resnet3d import VideoResNet

__all__ = [
    "C3D",
    "ConvTower",
    "EarlyFusion",
    "FoveaContextEncoder",
    "LateFusionFC",
    "LateFusionPool",
    "ModelInfo",
    "SingleFrame",
    "SlowFusion",
    "VideoResNet",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]
