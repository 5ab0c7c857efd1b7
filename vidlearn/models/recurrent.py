"""Recurrent models of long-term temporal structure: LRCN (CNN + LSTM) and the recurrent
convolutional network (stacked ConvGRUs).

The course: the CNNs so far see clips of a few seconds; to model long-term structure, process
local features with a recurrent network. Two ways:

- ``lrcn`` (Donahue et al., "Long-term Recurrent Convolutional Networks for Visual Recognition and
  Description", CVPR 2015): a 2D CNN turns every frame into a vector, an LSTM runs over the vectors.
  Many to one: one output at the end of the video; many to many: one output per frame. "Sometimes
  don't backprop to the CNN to save memory; pretrain and use it as a feature extractor"
  (``freeze_cnn=True``; ``vidlearn.engine.feature_cache`` then trains the LSTM on cached features).
- ``recurrent_conv`` (Ballas et al., "Delving Deeper into Convolutional Networks for Learning Video
  Representations", ICLR 2016): the whole network keeps 2D feature maps ``C x H x W``; each depends
  on the previous layer at the same time step and on the same layer at the previous time step; the
  weights differ per layer and are shared across time. A recurrent CNN has an infinite temporal
  extent like an RNN and local, convolutional connections like a CNN.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import TOWER_WIDTHS, check_clip, frame_encoder, require_positive
from vidlearn.models.fusion import FUSION_INPUT
from vidlearn.models.registry import register_model

LRCN_MODES = ("many_to_one", "many_to_many")


class LRCN(nn.Module):
    """A 2D CNN encodes every frame; an LSTM runs over the frame vectors; a linear layer classifies.

    ``frame_encoder`` maps frames ``N x C x H x W`` to vectors ``N x feature_dim``. Input
    ``B x C x T x H x W`` (any T >= 1). The LSTM (``batch_first``, ``hidden_size`` units,
    ``num_layers`` layers) gives hidden states ``B x T x hidden_size``; ``frame_logits`` applies the
    classifier at every step, ``B x T x K``.

    ``mode="many_to_one"``: the clip's logits are those of the last step, which has seen all frames.
    ``mode="many_to_many"``: the clip's logits are the mean over time of the per-frame logits. Because
    the classifier is linear this equals the classifier applied to the time-averaged hidden state,
    so ``features`` stays the vector the classifier sees, and cross-entropy on ``forward`` trains
    every step's prediction. ``features``: ``B x hidden_size`` (last hidden state, or the time
    average).

    ``freeze_cnn=True``: the encoder's parameters do not require gradients and the encoder runs in
    eval mode (batch norm uses its running statistics, whatever ``train()`` says) under
    ``torch.no_grad()``, so no activation of the CNN is kept for backward.
    ``recurrent_head(features)`` maps cached ``B x T x feature_dim`` frame features to logits.
    """

    def __init__(
        self,
        num_classes: int,
        frame_encoder: nn.Module,
        feature_dim: int,
        mode: str = "many_to_one",
        hidden_size: int = 256,
        num_layers: int = 1,
        freeze_cnn: bool = False,
        in_channels: int = 3,
    ):
        super().__init__()
        if mode not in LRCN_MODES:
            raise BadArgumentError(f"mode must be one of {', '.join(LRCN_MODES)}, got {mode!r}")
        require_positive(feature_dim=feature_dim, hidden_size=hidden_size, num_layers=num_layers)
        self.in_channels = in_channels
        self.mode = mode
        self.freeze_cnn = freeze_cnn
        self.encoder = frame_encoder
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.classifier = nn.Linear(hidden_size, num_classes)
        if freeze_cnn:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> LRCN:
        super().train(mode)
        if self.freeze_cnn:
            self.encoder.eval()
        return self

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x T x feature_dim``: each frame encoded independently."""
        check_clip(x, self.in_channels)
        with torch.no_grad() if self.freeze_cnn else nullcontext():
            encoded = self.encoder(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(encoded, "(b t) d -> b t d", b=x.shape[0])

    def _clip_summary(self, features: torch.Tensor) -> torch.Tensor:
        """``B x T x feature_dim`` -> ``B x hidden_size``: what the classifier sees for the clip."""
        hidden, _ = self.lstm(features)
        return hidden[:, -1] if self.mode == "many_to_one" else hidden.mean(dim=1)

    def recurrent_head(self, features: torch.Tensor) -> torch.Tensor:
        """Frame features ``B x T x feature_dim`` (e.g. cached) -> clip logits ``B x K``."""
        return self.classifier(self._clip_summary(features))

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x T x K``: the prediction after each frame."""
        hidden, _ = self.lstm(self.frame_features(x))
        return self.classifier(hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x hidden_size``."""
        return self._clip_summary(self.frame_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


class ConvGRU(nn.Module):
    """One layer of a recurrent convolutional network: a GRU whose products are 2D convolutions.

    Input maps ``B x T x C_in x H x W`` (the previous layer at every step) -> hidden maps
    ``B x T x C_out x H' x W'``, with ``h_0 = 0`` and, at step t (Ballas et al. 2016, GRU-RCN)::

        z_t = sigmoid(W_z * x_t + U_z * h_{t-1})          update gate
        r_t = sigmoid(W_r * x_t + U_r * h_{t-1})          reset gate
        h~_t = tanh(W * x_t + U * (r_t . h_{t-1}))        candidate
        h_t = (1 - z_t) . h_{t-1} + z_t . h~_t

    ``*`` is a 3x3 convolution, ``.`` the elementwise product. The input convolutions ``W`` have
    stride ``stride``, which downsamples space from one layer to the next
    (``H' = ceil(H / stride)``); the recurrent convolutions ``U`` keep the size.
    """

    def __init__(self, in_channels: int, hidden_channels: int, stride: int = 2):
        super().__init__()
        require_positive(in_channels=in_channels, hidden_channels=hidden_channels, stride=stride)
        self.hidden_channels = hidden_channels
        # W_z, W_r and W in one convolution: they all read x_t.
        self.input_conv = nn.Conv2d(in_channels, 3 * hidden_channels, 3, stride=stride, padding=1)
        # U_z and U_r in one convolution; no biases, the input convolution has them.
        self.gate_conv = nn.Conv2d(hidden_channels, 2 * hidden_channels, 3, padding=1, bias=False)
        self.candidate_conv = nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The input terms do not depend on h, so they are computed for all steps at once; only the
        # recurrent terms have to wait for the previous step.
        inputs = self.input_conv(rearrange(x, "b t c h w -> (b t) c h w"))
        inputs = rearrange(inputs, "(b t) c h w -> b t c h w", b=x.shape[0])
        hidden = torch.zeros_like(inputs[:, 0, : self.hidden_channels])
        states = []
        for step in inputs.unbind(dim=1):
            input_update, input_reset, input_candidate = step.chunk(3, dim=1)
            recurrent_update, recurrent_reset = self.gate_conv(hidden).chunk(2, dim=1)
            update = torch.sigmoid(input_update + recurrent_update)
            reset = torch.sigmoid(input_reset + recurrent_reset)
            candidate = torch.tanh(input_candidate + self.candidate_conv(reset * hidden))
            hidden = (1 - update) * hidden + update * candidate
            states.append(hidden)
        return torch.stack(states, dim=1)


class RecurrentConvNet(nn.Module):
    """Stacked ConvGRU layers of ``widths`` channels, each halving H and W; then pool and classify.

    Layer l at step t reads layer l-1 at step t and its own state at step t-1, so running the layers
    one after the other over all steps gives the same states as the course's step-by-step diagram,
    and a state never depends on later frames. Input ``B x C x T x H x W`` (any T, H, W >= 1);
    ``hidden_states`` gives the top layer's maps ``B x T x widths[-1] x H/2^L x W/2^L`` (sizes
    rounded up); ``features``: the top layer's final state, globally average-pooled,
    ``B x widths[-1]``; output ``B x K``. The weights are shared across time, so the parameter
    count does not depend on T.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...] = TOWER_WIDTHS, in_channels: int = 3):
        super().__init__()
        if not widths:
            raise BadArgumentError("widths must list at least one layer width")
        require_positive(in_channels=in_channels, **{f"width {i}": w for i, w in enumerate(widths)})
        self.in_channels = in_channels
        self.layers = nn.Sequential(
            *(ConvGRU(c_in, c_out) for c_in, c_out in zip((in_channels, *widths), widths))
        )
        self.classifier = nn.Linear(widths[-1], num_classes)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> the top layer's states ``B x T x C_L x H_L x W_L``."""
        check_clip(x, self.in_channels)
        return self.layers(rearrange(x, "b c t h w -> b t c h w"))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x C_L``: the final top-layer state, averaged over space."""
        return self.hidden_states(x)[:, -1].mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


@register_model(
    "lrcn",
    default_input=FUSION_INPUT,
    description="Donahue 2015 LRCN: 2D CNN per frame, then an LSTM (many-to-one or many-to-many)",
)
def lrcn(
    num_classes: int,
    mode: str = "many_to_one",
    hidden_size: int = 256,
    num_layers: int = 1,
    freeze_cnn: bool = False,
    in_channels: int = 3,
) -> LRCN:
    return LRCN(
        num_classes,
        frame_encoder(in_channels),
        TOWER_WIDTHS[-1],
        mode=mode,
        hidden_size=hidden_size,
        num_layers=num_layers,
        freeze_cnn=freeze_cnn,
        in_channels=in_channels,
    )


register_model(
    "recurrent_conv",
    default_input=FUSION_INPUT,
    description="Ballas 2016 recurrent convolutional network: stacked ConvGRUs over 2D feature maps",
)(RecurrentConvNet)
