"""VideoMAE pre-training (Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for
Self-Supervised Video Pre-Training", NeurIPS 2022).

A clip is cut into ``2 x 16 x 16`` tubelets, ``N = T' * N_s`` tokens (``N_s`` per temporal index).

- Tube masking: one random set of ``int(mask_ratio * N_s)`` spatial positions is masked at every
  temporal index (the official ``TubeMaskingGenerator``), so a masked patch cannot be copied from
  the same place in a neighbouring frame. With ratio 0.9 at 16 x 224 x 224, 176 of 196 positions
  are masked: 8 x 20 = 160 of 1568 tokens stay visible.
- Asymmetric encoder/decoder: the encoder (``vit_video``'s embedding and blocks, then
  ``encoder_norm``) sees only the visible tokens, about a tenth of them; ``encoder_to_decoder``
  maps them to a narrower decoder (384 wide, 4 blocks for ViT-B), which also gets a shared learned
  ``mask_token`` at every masked position (fixed sine-cosine positions for all) and predicts the
  pixels of every masked tubelet (``2 * 16 * 16 * 3`` values, ordered ``(t, h, w, c)``).
- Loss: mean squared error over masked tubelets only, against the tubelet's pixels normalised per
  channel by their mean and (unbiased) standard deviation over the tubelet (``norm_pix_loss``). The
  official code first undoes the ImageNet normalisation of the input; this normalisation removes any
  per-channel affine map anyway, so here targets come from the clip as given (the results differ
  only through the ``1e-6`` added to the standard deviation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.transformer import (
    layer_norm,
    learned_embedding,
    sincos_position_table,
    transformer_blocks,
    transformer_size,
)
from vidlearn.models.vit_video import VIT_VIDEO_INPUT, VideoViTBackbone

# Added to the standard deviation of a tubelet's pixels before dividing, as in the official code.
NORM_PIX_EPS = 1e-6


class VideoMAE(nn.Module):
    """Masked autoencoder for clips ``B x C x T x H x W`` (see the module docstring).

    Built from a ``size`` name (tiny, small, base: encoder ViT-Ti/S/B-like, decoder of the size's
    ``decoder_*`` fields) for clips of ``num_frames x frame_size``. ``forward(clips)`` gives
    ``(loss, prediction, mask)``; ``reconstruct(clips)`` gives pictures; ``encoder_state_dict()``
    the weights to fine-tune with ``create_model("vit_video", num_classes, **model.backbone_options)``.

    Masks are ``B x N`` booleans, ``True`` where a tubelet is masked, tokens in (t, h, w) order;
    they are drawn with ``torch.rand`` from ``generator`` (on the generator's device) when given.
    Linear layers start as in the official pre-training code (Xavier-uniform weights, zero biases).
    """

    def __init__(
        self,
        size: str = "base",
        num_frames: int = VIT_VIDEO_INPUT[1],
        frame_size: int | tuple[int, int] = VIT_VIDEO_INPUT[2:],
        mask_ratio: float = 0.9,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_channels: int = 3,
    ):
        super().__init__()
        if (
            isinstance(mask_ratio, bool)
            or not isinstance(mask_ratio, (int, float))
            or not 0 <= mask_ratio < 1
        ):
            raise BadArgumentError(f"mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
        spec = transformer_size(size)
        self.backbone_options = dict(
            size=size,
            patch_size=patch_size,
            tubelet_size=tubelet_size,
            num_frames=num_frames,
            frame_size=frame_size,
            in_channels=in_channels,
        )
        self.encoder = VideoViTBackbone(**self.backbone_options)
        self.encoder_norm = layer_norm(spec.dim)
        embedding = self.encoder.patch_embed
        self.tubelet = embedding.tubelet
        self.grid = embedding.grid
        num_tokens = self.grid[0] * embedding.patches_per_frame
        self.mask_ratio = mask_ratio
        self.masked_per_frame = int(mask_ratio * embedding.patches_per_frame)
        self.num_visible = self.grid[0] * (embedding.patches_per_frame - self.masked_per_frame)

        self.encoder_to_decoder = nn.Linear(spec.dim, spec.decoder_dim, bias=False)
        self.mask_token = learned_embedding(1, 1, spec.decoder_dim)
        self.register_buffer(
            "decoder_pos_embed", sincos_position_table(num_tokens, spec.decoder_dim)[None], persistent=False
        )
        self.decoder_blocks = transformer_blocks(
            spec.decoder_dim, spec.decoder_depth, spec.decoder_heads, spec.mlp_ratio
        )
        self.decoder_norm = layer_norm(spec.decoder_dim)
        self.decoder_head = nn.Linear(spec.decoder_dim, in_channels * math.prod(self.tubelet))
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    @property
    def num_tokens(self) -> int:
        return self.decoder_pos_embed.shape[1]

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights, under the names ``vit_video`` uses (all but its ``fc_norm`` and ``head``)."""
        return self.encoder.state_dict()

    def tube_mask(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch x N`` booleans: per clip, the same random ``int(mask_ratio * N_s)`` positions masked at
        every temporal index."""
        device = generator.device if generator is not None else self.decoder_pos_embed.device
        noise = torch.rand(
            batch, self.encoder.patch_embed.patches_per_frame, generator=generator, device=device
        )
        # The positions with the smallest noise are masked: exactly masked_per_frame per clip.
        rank = noise.argsort(dim=1).argsort(dim=1)
        frame_mask = rank < self.masked_per_frame
        return repeat(frame_mask, "b n -> b (t n)", t=self.grid[0]).to(self.decoder_pos_embed.device)

    def forward(
        self, clips: torch.Tensor, mask: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, prediction, mask)`` for clips ``B x C x T x H x W``.

        ``mask`` (``B x N`` booleans, ``True`` = masked) defaults to a fresh tube mask; any mask with
        the model's number of masked tokens in every clip works. ``prediction``: ``B x N_masked x P``
        normalised pixels of the masked tubelets in token order, ``P = t * p * p * C``.
        """
        prediction, mask, masked_index = self._predict(clips, mask, generator)
        target = _gather_tokens(self.normalised_tubelets(clips), masked_index)
        return F.mse_loss(prediction, target), prediction, mask

    def normalised_tubelets(self, clips: torch.Tensor) -> torch.Tensor:
        """``B x N x P``: each tubelet's pixels, ``(t, h, w, c)`` order, per channel minus their mean over
        the tubelet and divided by their standard deviation (+1e-6): the loss's targets."""
        pixels = self._tubelet_pixels(clips)
        mean, std = _tubelet_statistics(pixels)
        return rearrange((pixels - mean) / std, "b n p c -> b n (p c)")

    @torch.no_grad()
    def reconstruct(
        self, clips: torch.Tensor, mask: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masked_clip, reconstructed_clip)``, both ``B x C x T x H x W``, for pictures.

        ``masked_clip`` is the input with masked tubelets set to 0. ``reconstructed_clip`` has the
        visible tubelets of the input and, at masked ones, the prediction mapped back to pixels with
        the true tubelet's mean and standard deviation (as the official visualisation does).
        """
        prediction, mask, masked_index = self._predict(clips, mask, generator)
        pixels = self._tubelet_pixels(clips)
        mean, std = _tubelet_statistics(pixels)
        predicted_pixels = rearrange(prediction, "b n (p c) -> b n p c", c=clips.shape[1])
        predicted_pixels = predicted_pixels * _gather_tokens(std, masked_index) + _gather_tokens(
            mean, masked_index
        )
        where = masked_index[:, :, None, None].expand(-1, -1, *pixels.shape[2:])
        reconstructed = pixels.scatter(1, where, predicted_pixels)
        masked = pixels.masked_fill(mask[:, :, None, None], 0.0)
        return self._clip_from_tubelets(masked), self._clip_from_tubelets(reconstructed)

    def _split(self, mask: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the visible and of the masked tokens, each in token order: ``B x N_visible``, ``B x N_masked``."""
        if mask.shape != (batch, self.num_tokens) or mask.dtype != torch.bool:
            raise BadArgumentError(
                f"a mask is a bool tensor of shape {(batch, self.num_tokens)}, got {mask.dtype} {tuple(mask.shape)}"
            )
        if not bool((mask.sum(dim=1) == self.num_tokens - self.num_visible).all()):
            raise BadArgumentError(
                f"every clip's mask must hide {self.num_tokens - self.num_visible} of {self.num_tokens} tokens "
                f"(mask_ratio {self.mask_ratio}), got {mask.sum(dim=1).tolist()}"
            )
        # A stable sort puts the visible tokens (False) first, each group in token order.
        order = mask.to(torch.uint8).argsort(dim=1, stable=True)
        return order[:, : self.num_visible], order[:, self.num_visible :]

    def _predict(
        self, clips: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible tokens only, decode them with mask tokens: the prediction ``B x N_masked x P``,
        the mask (drawn if not given) and the masked tokens' indices ``B x N_masked``."""
        tokens = self.encoder.embed(clips)
        if mask is None:
            mask = self.tube_mask(clips.shape[0], generator)
        visible_index, masked_index = self._split(mask, clips.shape[0])
        encoded = self.encoder_norm(self.encoder.blocks(_gather_tokens(tokens, visible_index)))
        positions = self.decoder_pos_embed.expand(tokens.shape[0], -1, -1)
        visible = self.encoder_to_decoder(encoded) + _gather_tokens(positions, visible_index)
        masked = self.mask_token + _gather_tokens(positions, masked_index)
        decoded = self.decoder_blocks(torch.cat([visible, masked], dim=1))
        # Only the masked tokens' predictions are used, so only they go through the norm and head.
        return self.decoder_head(self.decoder_norm(decoded[:, self.num_visible :])), mask, masked_index

    def _tubelet_pixels(self, clips: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x N x (t p p) x C``."""
        t, h, w = self.tubelet
        return rearrange(clips, "b c (n0 t) (n1 h) (n2 w) -> b (n0 n1 n2) (t h w) c", t=t, h=h, w=w)

    def _clip_from_tubelets(self, pixels: torch.Tensor) -> torch.Tensor:
        """``B x N x (t p p) x C`` -> ``B x C x T x H x W``."""
        (t, h, w), (n0, n1, n2) = self.tubelet, self.grid
        return rearrange(
            pixels, "b (n0 n1 n2) (t h w) c -> b c (n0 t) (n1 h) (n2 w)", n0=n0, n1=n1, n2=n2, t=t, h=h, w=w
        )


def _tubelet_statistics(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tubelet and channel: mean and unbiased standard deviation + 1e-6, ``B x N x 1 x C`` each."""
    return pixels.mean(dim=2, keepdim=True), pixels.var(dim=2, keepdim=True).sqrt() + NORM_PIX_EPS


def _gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tokens[b, index[b]]`` for every clip ``b``: ``B x N x ...`` -> ``B x len(index[b]) x ...``."""
    expanded = index.view(*index.shape, *(1,) * (tokens.ndim - 2)).expand(-1, -1, *tokens.shape[2:])
    return tokens.gather(1, expanded)
