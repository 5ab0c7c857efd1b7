"""Winograd convolution for 3D kernels of size ``kt x 3 x 3`` on a CPU (stride 1, "same" padding).

Lavin & Gray's F(4 x 4, 3 x 3) ("Fast Algorithms for Convolutional Neural Networks", CVPR 2016)
applied to each frame's two spatial dimensions: a 6 x 6 input tile gives a 4 x 4 output tile with
36 products per (input channel, output channel, temporal tap) instead of 144, so the matrix products
that do the work shrink 4x. The temporal taps stay a sum: output frame ``t`` adds the products of
frames ``t + dt - pt`` for ``dt < kt``. It is exact arithmetic rearranged (no approximation);
in float32 the different order of sums changes results by about 1e-5 relative (tests hold it to
``vidlearn.speed.FAST_TOLERANCE``).

Layouts: clips are ``B x C x T x H x W`` stored channels-last (``B, T, H, W, C`` in memory). In the
Winograd domain a clip is ``36 x T x tiles x C`` (tile position ``p = 6 i + j``), so that each
temporal tap is one contiguous slice and one batched product over the 36 positions:
``M[p] = sum_dt V[p, dt : dt + T] @ U[p, dt]`` with ``U = G w G^T`` of shape ``36 x kt x C x Co``.

Speed comes only if the transforms cost less than the products saved; on two cores that holds when
no transform touches fresh memory (the kernel zero-fills every new page of a large allocation,
at a fifth of the speed of a copy), so the intermediates live in a per-thread workspace that is
reused by every layer and call (``workspace.py``; about 100 MB for ResNet clips of 16 x 112 x 112),
and clips are processed a few at a time so that it stays that small. Measurements and the rule for
when it pays (``winograd_pays``): ``docs/model-speed.md``.
"""

from __future__ import annotations

import functools

import torch

from vidlearn.speed.workspace import WORKSPACE

OUT_TILE = 4  # m: output tile side
IN_TILE = OUT_TILE + 2  # m + r - 1 for r = 3
POSITIONS = IN_TILE * IN_TILE

# F(4, 3) with interpolation points 0, +-1, +-2 and infinity (Lavin & Gray 2016, section 4.2).
_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))

# Elements per workspace buffer a chunk of clips may use (32 MB in float32); one clip may exceed it.
_CHUNK_ELEMENTS = 2**23


def transform_matrices(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1D F(4, 3) matrices ``(B^T 6 x 6, G 6 x 3, A^T 4 x 6)``: for a signal ``d`` of 6 samples and a
    3-tap kernel ``g``, ``A^T ((G g) * (B^T d))`` is the 4 outputs of the correlation ``sum_k d[i+k] g[k]``."""
    return tuple(torch.tensor(m, dtype=dtype) for m in (_BT, _G, _AT))


@functools.cache
def tile_matrices(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """2D transforms on flattened tiles: ``B^T (x) B^T`` (36 x 36) for 6 x 6 input tiles and
    ``A^T (x) A^T`` (16 x 36) back to 4 x 4 output tiles."""
    bt, _, at = transform_matrices()
    return torch.kron(bt, bt).to(dtype), torch.kron(at, at).to(dtype)


@functools.cache
def _kernel_matrix(dtype: torch.dtype, flipped: bool) -> torch.Tensor:
    """``G (x) G`` (36 x 9) on flattened 3 x 3 kernels; with the kernel flipped first if ``flipped``."""
    g = transform_matrices()[1]
    g = g.flip(1) if flipped else g
    return torch.kron(g, g).to(dtype)


def transform_weight(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """A ``Co x C x kt x 3 x 3`` kernel in the Winograd domain, as ``36 x kt x C x Co`` (``G w G^T`` per
    channel pair and tap; a view of ``36 x kt x Co x C`` memory). ``transposed``: the kernel of the
    input gradient instead (``w`` flipped in time and space, channels swapped), ``36 x kt x Co x C``."""
    kt = weight.shape[2]
    if transposed:
        weight = weight.flip(2)
    # 3 x 3 taps first, channels last: rows of C contiguous values whatever the weight's layout.
    taps = weight.detach().permute(3, 4, 2, 0, 1).reshape(9, -1)
    u = torch.mm(_kernel_matrix(weight.dtype, transposed), taps).view(POSITIONS, kt, *weight.shape[:2])
    return u if transposed else u.transpose(2, 3)


def weight_from_domain(grad_u: torch.Tensor) -> torch.Tensor:
    """The gradient with respect to ``w`` of a loss whose gradient with respect to ``U = G w G^T`` is
    ``grad_u`` (``36 x kt x Co x C``): ``G^T grad_U G``, as ``Co x C x kt x 3 x 3`` (channels-last)."""
    _, kt, out_channels, in_channels = grad_u.shape
    taps = torch.mm(_kernel_matrix(grad_u.dtype, False).t(), grad_u.reshape(POSITIONS, -1))  # 9 x (kt Co C)
    by_channel = (
        taps.view(3, 3, kt, out_channels, in_channels).permute(3, 2, 0, 1, 4).contiguous()
    )  # Co kt 3 3 C
    return by_channel.permute(0, 4, 1, 2, 3)


def applies(kernel_size, stride, padding, dilation, groups: int) -> bool:
    """Whether a 3D convolution is one this module computes: ``kt x 3 x 3`` kernel with odd ``kt``,
    stride 1, padding ``(kt // 2, 1, 1)``, no dilation, no groups."""
    kt, kh, kw = kernel_size
    return (
        (kh, kw) == (3, 3)
        and kt % 2 == 1
        and tuple(stride) == (1, 1, 1)
        and tuple(padding) == (kt // 2, 1, 1)
        and tuple(dilation) == (1, 1, 1)
        and groups == 1
    )


def winograd_pays(
    in_channels: int, out_channels: int, kt: int, height: int, width: int, training: bool = False
) -> bool:
    """Whether F(4x4, 3x3) beats oneDNN for this layer on a CPU (measured on AVX2, two threads,
    ``docs/model-speed.md``). The transforms cost per input and output element and the savings grow
    with the channels multiplied per element (``kt x C``), so inference pays from ``kt x C >= 128``
    with at least 64 output channels, on grids of at least 4 x 4. A training step also saves on
    oneDNN's slow weight gradient, so it pays from ``kt x C >= 64``, but it transforms the weight twice
    (forward and input gradient) and its gradient back, which the products of grids under 14 x 14
    (2 x 2 tiles of 7 x 7 frames) do not pay for."""
    if training:
        return kt * in_channels >= 64 and out_channels >= 64 and height * width >= 14 * 14
    return kt * in_channels >= 128 and out_channels >= 64 and min(height, width) >= 4


def weight_grad_pays(height: int, width: int) -> bool:
    """Whether ``weight_grad`` beats ``conv_gradients.conv3d_weight_grad`` (measured as ``winograd_pays``): on
    grids larger than 14 x 14; on smaller ones the products have too few rows per tile position."""
    return height * width > 14 * 14


def _grid(height: int, width: int) -> tuple[int, int]:
    return -(-height // OUT_TILE), -(-width // OUT_TILE)


def _input_domain(clips: torch.Tensor, pt: int, slot: int) -> torch.Tensor:
    """``b x T x H x W x C`` (any strides) -> ``V``: ``36 x (T + 2 pt) x (b nH nW) x C`` in the workspace."""
    b, frames, height, width, channels = clips.shape
    n_h, n_w = _grid(height, width)
    padded_frames = frames + 2 * pt
    # Zero-padded frames, time first: each temporal tap of the products becomes one contiguous slice.
    padded = WORKSPACE.take(
        0, (padded_frames, b, n_h * OUT_TILE + 2, n_w * OUT_TILE + 2, channels), clips.dtype
    )
    padded[:pt].zero_()
    padded[pt + frames :].zero_()
    inner = padded[pt : pt + frames]
    inner[:, :, 0].zero_()
    inner[:, :, 1 + height :].zero_()
    inner[:, :, :, 0].zero_()
    inner[:, :, :, 1 + width :].zero_()
    inner[:, :, 1 : 1 + height, 1 : 1 + width].copy_(clips.transpose(0, 1))
    s = padded.stride()
    tiles = padded.as_strided(
        (IN_TILE, IN_TILE, padded_frames, b, n_h, n_w, channels),
        (s[2], s[3], s[0], s[1], OUT_TILE * s[2], OUT_TILE * s[3], s[4]),
    )
    flat = WORKSPACE.take(slot, (POSITIONS, padded_frames * b * n_h * n_w * channels), clips.dtype)
    flat.view(tiles.shape).copy_(tiles)
    transformed = WORKSPACE.take(slot + 1, flat.shape, clips.dtype)
    torch.mm(tile_matrices(clips.dtype)[0], flat, out=transformed)
    return transformed.view(POSITIONS, padded_frames, b * n_h * n_w, channels)


def _products(v: torch.Tensor, u: torch.Tensor, frames: int, slot: int) -> torch.Tensor:
    """``M[p] = sum_dt V[p, dt : dt + T] @ U[p, dt]``: ``36 x (T tiles) x Co`` in the workspace."""
    kt, out_channels = u.shape[1], u.shape[3]
    rows = frames * v.shape[2]
    m = WORKSPACE.take(slot, (POSITIONS, rows, out_channels), v.dtype)
    for dt in range(kt):
        taps = v[:, dt : dt + frames].reshape(POSITIONS, rows, v.shape[3])
        if dt == 0:
            torch.bmm(taps, u[:, dt], out=m)
        else:
            m.baddbmm_(taps, u[:, dt])
    return m


def _output_tiles(m: torch.Tensor, slot: int) -> torch.Tensor:
    """``36 x rows x Co`` -> ``16 x rows x Co`` (``A^T M A`` per tile) in the workspace."""
    out = WORKSPACE.take(slot, (OUT_TILE * OUT_TILE, m.shape[1] * m.shape[2]), m.dtype)
    torch.mm(tile_matrices(m.dtype)[1], m.view(POSITIONS, -1), out=out)
    return out


def _write_tiles(y: torch.Tensor, out: torch.Tensor, frames: int, b: int, slot: int) -> None:
    """Scatter output tiles ``16 x (T b nH nW) x Co`` into ``out``: ``b x T x H x W x Co``."""
    height, width, channels = out.shape[2:]
    n_h, n_w = _grid(height, width)
    tiles = y.view(OUT_TILE, OUT_TILE, frames, b, n_h, n_w, channels).permute(3, 2, 4, 0, 5, 1, 6)
    if height % OUT_TILE == 0 and width % OUT_TILE == 0:
        out.view(b, frames, n_h, OUT_TILE, n_w, OUT_TILE, channels).copy_(tiles)
        return
    full = WORKSPACE.take(slot, (b, frames, n_h, OUT_TILE, n_w, OUT_TILE, channels), y.dtype)
    full.copy_(tiles)
    out.copy_(full.view(b, frames, n_h * OUT_TILE, n_w * OUT_TILE, channels)[:, :, :height, :width])


def _chunk(b: int, frames: int, height: int, width: int, channels: int) -> int:
    n_h, n_w = _grid(height, width)
    per_clip = POSITIONS * frames * n_h * n_w * channels
    return max(1, min(b, _CHUNK_ELEMENTS // per_clip))


def conv3d(
    x: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    relu: bool = False,
) -> torch.Tensor:
    """``relu?(conv3d(x, w, bias, stride=1, padding=(kt // 2, 1, 1)) (+ residual))`` with ``u =
    transform_weight(w)`` (``36 x kt x C x Co``). ``x``: ``B x C x T x H x W`` (any layout; read
    channels-last); ``residual``: ``B x Co x T x H x W``. Returns ``B x Co x T x H x W``, channels-last."""
    batch, channels, frames, height, width = x.shape
    kt, out_channels = u.shape[1], u.shape[3]
    pt = kt // 2
    xl = x.permute(0, 2, 3, 4, 1)
    out = torch.empty((batch, frames, height, width, out_channels), dtype=x.dtype, device=x.device)
    res = residual.permute(0, 2, 3, 4, 1) if residual is not None else None
    step = _chunk(batch, frames + 2 * pt, height, width, max(channels, out_channels))
    for b0 in range(0, batch, step):
        b1 = min(batch, b0 + step)
        v = _input_domain(xl[b0:b1], pt, slot=1)  # slots 1 (tiles, dead after) and 2
        m = _products(v, u, frames, slot=1)
        y = _output_tiles(m, slot=2)
        chunk = out[b0:b1]
        _write_tiles(y, chunk, frames, b1 - b0, slot=1)
        if bias is not None:
            chunk.add_(bias)
        if res is not None:
            chunk.add_(res[b0:b1])
        if relu:
            chunk.relu_()
    return out.permute(0, 4, 1, 2, 3)


def weight_grad(x: torch.Tensor, grad: torch.Tensor, kt: int) -> torch.Tensor:
    """Gradient with respect to ``w`` (``Co x C x kt x 3 x 3``) of ``conv3d`` above, given the output
    gradient ``grad`` (``B x Co x T x H x W``), computed in the Winograd domain:
    ``dU[p, dt] = sum dM[p]^T V[p, dt : dt + T]`` with ``dM = A dY A^T`` per tile, then ``G^T dU G``."""
    batch, channels, frames, height, width = x.shape
    out_channels = grad.shape[1]
    pt = kt // 2
    n_h, n_w = _grid(height, width)
    xl, gl = x.permute(0, 2, 3, 4, 1), grad.permute(0, 2, 3, 4, 1)
    grad_u = torch.zeros((POSITIONS, kt, out_channels, channels), dtype=x.dtype)
    _, at_at = tile_matrices(x.dtype)
    step = _chunk(batch, frames + 2 * pt, height, width, max(channels, out_channels))
    for b0 in range(0, batch, step):
        b1 = min(batch, b0 + step)
        b = b1 - b0
        v = _input_domain(xl[b0:b1], pt, slot=1)
        rows = frames * b * n_h * n_w
        # Output-gradient tiles, zero beyond the frame's edge: 16 x (T b nH nW) x Co.
        tiles = WORKSPACE.take(3, (OUT_TILE, OUT_TILE, frames, b, n_h, n_w, out_channels), x.dtype)
        by_tile = tiles.permute(3, 2, 4, 0, 5, 1, 6)  # b T nH 4 nW 4 Co
        if height % OUT_TILE or width % OUT_TILE:
            padded = WORKSPACE.take(4, (b, frames, n_h * OUT_TILE, n_w * OUT_TILE, out_channels), x.dtype)
            padded[:, :, height:].zero_()
            padded[:, :, :, width:].zero_()
            padded[:, :, :height, :width].copy_(gl[b0:b1])
            source = padded
        else:
            source = gl[b0:b1]
        by_tile.copy_(source.reshape(b, frames, n_h, OUT_TILE, n_w, OUT_TILE, out_channels))
        grad_m = WORKSPACE.take(1, (POSITIONS, rows * out_channels), x.dtype)  # slot 1's tiles are dead
        torch.mm(at_at.t(), tiles.view(OUT_TILE * OUT_TILE, -1), out=grad_m)
        grad_m = grad_m.view(POSITIONS, rows, out_channels)
        for dt in range(kt):
            taps = v[:, dt : dt + frames].reshape(POSITIONS, rows, channels)
            grad_u[:, dt].baddbmm_(grad_m.transpose(1, 2), taps)
    return weight_from_domain(grad_u)
