"""The course's video classification models, one file per family, and a registry for the CLI.

Every model takes float clips ``B x C x T x H x W`` and returns logits ``B x num_classes``; its
``features(x)`` gives the ``B x D`` representation the classifier sees. Build a model by name
(``create_model("r3d_18", num_classes=400)``), with its class or builder
(``from vidlearn.models import VideoResNet, r3d_18``), or inflate a 2D network into a 3D one
(``from vidlearn.models import inflate; inflate(model_2d)``).

Models are plain ``nn.Module``s made of standard layers. Their ReLUs are not in-place, so forward
and backward hooks (shape and cost analysis, saliency) see every layer's output unmodified.

``__all__`` holds every model class, every builder function, the registry, inflation and the
blocks meant for new models; the layers of one family (``resnet3d.BasicBlock``, ``x3d.SqueezeExcite``,
...) stay in their modules, where names such as ``BasicBlock`` do not clash. Four builders share
their module's name (``c3d``, ``fovea``, ``tsn``, ``vivit``) and stay in their modules
(``vidlearn.models.tsn.tsn``), so that ``vidlearn.models.tsn`` remains the module; ``create_model``
builds them by name.
"""

# Importing each family module registers its models.
from vidlearn.models import (  # noqa: F401
    c3d,
    course,
    fovea,
    fusion,
    i3d,
    mvit,
    nonlocal_net,
    recurrent,
    resnet3d,
    slowfast,
    timesformer,
    tsn,
    two_stream,
    vit_video,
    vivit,
    x3d,
)
from vidlearn.models.blocks import ConvTower, Residual, frame_encoder, init_he
from vidlearn.models.c3d import C3D, c3d_small
from vidlearn.models.course import course_3d, course_early, course_late, course_tower
from vidlearn.models.fovea import FoveaContextEncoder
from vidlearn.models.fusion import (
    EarlyFusion,
    LateFusionFC,
    LateFusionPool,
    SingleFrame,
    SlowFusion,
    early_fusion,
    late_fusion_fc,
    late_fusion_pool,
    single_frame,
    slow_fusion,
)
from vidlearn.models.i3d import I3DResNet, InflatedClassifier, i3d_r50, i3d_time_kernels, i3d_tower
from vidlearn.models.inflation import ReplicateTimeConv3d, inflate, inflate_state_dict, inflate_weight
from vidlearn.models.mvit import MViT, mvit_v2_s
from vidlearn.models.nonlocal_net import NonLocalBlock, insert_non_local, r3d_18_nl, slow_fusion_nl
from vidlearn.models.recurrent import LRCN, ConvGRU, RecurrentConvNet, lrcn
from vidlearn.models.registry import ModelInfo, create_model, list_models, model_info, register_model
from vidlearn.models.resnet2d import ResNet, resnet18, resnet50
from vidlearn.models.resnet3d import VideoResNet, mc3_18, r2plus1d_18, r3d_18
from vidlearn.models.slowfast import SlowFast, slowfast_r50
from vidlearn.models.timesformer import TimeSformer
from vidlearn.models.tsn import TSN
from vidlearn.models.two_stream import SpatialStream, TwoStream, flow_stream, temporal_stream
from vidlearn.models.vit_video import VideoViT, VideoViTBackbone
from vidlearn.models.vivit import ViViT, ViViTFactorisedEncoder, ViViTFactorisedSelfAttention
from vidlearn.models.x3d import X3D

__all__ = [
    "C3D",
    "LRCN",
    "TSN",
    "X3D",
    "ConvGRU",
    "ConvTower",
    "EarlyFusion",
    "FoveaContextEncoder",
    "I3DResNet",
    "InflatedClassifier",
    "LateFusionFC",
    "LateFusionPool",
    "MViT",
    "ModelInfo",
    "NonLocalBlock",
    "RecurrentConvNet",
    "ReplicateTimeConv3d",
    "ResNet",
    "Residual",
    "SingleFrame",
    "SlowFast",
    "SlowFusion",
    "SpatialStream",
    "TimeSformer",
    "TwoStream",
    "VideoResNet",
    "VideoViT",
    "VideoViTBackbone",
    "ViViT",
    "ViViTFactorisedEncoder",
    "ViViTFactorisedSelfAttention",
    "c3d_small",
    "course_3d",
    "course_early",
    "course_late",
    "course_tower",
    "create_model",
    "early_fusion",
    "flow_stream",
    "frame_encoder",
    "i3d_r50",
    "i3d_time_kernels",
    "i3d_tower",
    "inflate",
    "inflate_state_dict",
    "inflate_weight",
    "init_he",
    "insert_non_local",
    "late_fusion_fc",
    "late_fusion_pool",
    "list_models",
    "lrcn",
    "mc3_18",
    "model_info",
    "mvit_v2_s",
    "r2plus1d_18",
    "r3d_18",
    "r3d_18_nl",
    "register_model",
    "resnet18",
    "resnet50",
    "single_frame",
    "slow_fusion",
    "slow_fusion_nl",
    "slowfast_r50",
    "temporal_stream",
]
