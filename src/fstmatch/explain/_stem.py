"""Masked inputs through a model's first convolution without running it.

A convolution is linear, zero padding included, so for a masked input that keeps the players ``S``
of image ``x`` over baseline ``b``::

    conv(b + sum_{c in S} 1_c * (x - b)) = conv(b) + sum_{c in S} conv_nobias(1_c * (x - b))

An output position only sees the players inside its receptive field: on the laptop demo's 64-px
ResNet with an 8x8 grid a 7x7/2 window spans at most 2x2 cells. So per image we keep, for each
output position, the contributions of the K players its window touches (K <= 4 there), and a masked
input's stem output is ``conv(b)`` plus the kept ones: K multiply-adds per output value instead of
the convolution's C_in*k_h*k_w (147), and no masked image is built at all. The model copy runs from
the stem's output on (the convolution is replaced by a slot holding it).

Values equal the full forward's up to float rounding (the sums run in another order); tested, and
checked on the caller's first image before use. Used by ``shapley(..., optimize=True)`` for the
batched path; ``StemMasker.find`` returns None where it does not apply or would not pay.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fstmatch.explain._utils import _hooked_forward, _twin_copy, replace_children

#: Use the slots only where a position's K kept contributions cost at most this fraction of the
#: convolution's multiply-adds per output value (C_in * k_h * k_w / groups).
MAX_SLOT_FRACTION = 0.125
#: Per-image contributions kept (least recently used dropped beyond this): K * positions * C_out floats.
CACHE_BYTES = 256 * 2**20
#: Players whose masked differences are convolved together when an image's contributions are built.
SEGMENT_CHUNK = 16


class StemSlot(nn.Module):
    """Stands in for a stem convolution in the model copy: returns the output put in ``value``."""

    def __init__(self) -> None:
        super().__init__()
        self.value: Tensor | None = None

    def forward(self, _x: Tensor) -> Tensor:
        if self.value is None:
            raise RuntimeError("StemSlot called without a stem output (the masker fills it before each call)")
        return self.value


class _Stem:
    """One stem convolution: its weights, its slot in the copy, and per-image contributions."""

    def __init__(self, conv: nn.Conv2d, slot: StemSlot) -> None:
        self.conv, self.slot = conv, slot
        self.weight = conv.weight.detach()
        self.bias = conv.bias.detach() if conv.bias is not None else None
        self.args = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        #: the convolution's multiply-adds per output value
        self.macs_per_output = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        self.out_hw: tuple[int, int] = (0, 0)  # set with the first image's contributions

    def out(self, x: Tensor, bias: bool = True) -> Tensor:
        return F.conv2d(x, self.weight, self.bias if bias else None, **self.args)

    def windows(self, labels: Tensor, n_players: int) -> Tensor:
        """The players each output position sees: labels (H, W) long -> (K, L) long, padded with
        ``n_players`` (a player whose contribution is zero)."""
        kh, kw = self.weight.shape[-2:]
        lab = (labels + 1).to(self.weight.dtype)[None, None]  # 0: zero padding
        cols = F.unfold(lab, (kh, kw), dilation=self.args["dilation"], padding=self.args["padding"],
                        stride=self.args["stride"])[0].round().long()  # (kh*kw, L)
        s = cols.t().sort(dim=1).values  # (L, kh*kw)
        new = s > 0
        new[:, 1:] &= s[:, 1:] != s[:, :-1]
        rank = new.cumsum(dim=1) - 1
        k = int(new.sum(dim=1).max())
        seg = torch.full((s.shape[0], max(k, 1)), n_players, dtype=torch.long)
        pos = new.nonzero(as_tuple=True)
        seg[pos[0], rank[new]] = s[new] - 1
        return seg.t().contiguous()

    def contributions(self, diff: Tensor, labels: Tensor, seg: Tensor, n_players: int) -> Tensor:
        """Per-slot contributions of one image: diff (C, H, W), labels (H, W) -> (K, L, C_out)."""
        k, positions = seg.shape
        out = torch.zeros(k, positions, self.weight.shape[0], dtype=diff.dtype, device=diff.device)
        for lo in range(0, n_players, SEGMENT_CHUNK):
            players = torch.arange(lo, min(lo + SEGMENT_CHUNK, n_players), device=diff.device)
            masked = diff[None] * (labels[None] == players.view(-1, 1, 1)).to(diff.dtype)[:, None]
            part = self.out(masked, bias=False).flatten(2)  # (chunk, C_out, L)
            hit = (seg >= lo) & (seg < lo + players.numel())
            slot, pos = hit.nonzero(as_tuple=True)
            out[slot, pos] = part[seg[slot, pos] - lo, :, pos]
        return out


class StemMasker:
    """Fills the stem slots of a model copy with the outputs of masked inputs, from coalitions."""

    def __init__(self, stems: list[_Stem], images: Tensor, baselines: Tensor, labels: Tensor,
                 shared: bool, n_players: int) -> None:
        self.stems, self.n_players = stems, n_players
        self.images, self.baselines = images, baselines
        self.labels, self.shared = labels, shared  # (H, W) shared, else (N, H, W)
        self._shared_seg: dict[int, Tensor] = {}
        self._cache: OrderedDict[int, list[tuple[Tensor, Tensor, Tensor]]] = OrderedDict()
        self._cache_left = CACHE_BYTES
        self._dummy = torch.zeros((), dtype=images.dtype, device=images.device)

    @classmethod
    def find(cls, fn: nn.Module, probe_args: tuple, images: Tensor, baselines: Tensor,
             labels: Tensor | None, grid: int | None, n_players: int) -> tuple[nn.Module, StemMasker] | None:
        """A copy of ``fn`` whose stem convolutions read slots, and the masker that fills them; None
        where the model's input reaches anything but plain Conv2d stems, or the slots would not pay.

        ``labels``: each pixel's player, (H*W,) shared or (N, H*W); None with ``grid``: the grid's
        cells (row-major). ``images``/``baselines`` (N, C, H, W) as the copy's input expects them.
        """
        n, _, h, w = images.shape
        if labels is None:
            if grid is None:
                return None
            rows = torch.arange(h, device=images.device) // (h // grid)
            cols = torch.arange(w, device=images.device) // (w // grid)
            labels, shared = rows[:, None] * grid + cols[None, :], True
        else:
            shared = labels.dim() == 1
            labels = labels.view(h, w) if shared else labels.view(n, h, w)
        probe = images[:1]
        convs = [m for m in fn.modules() if type(m) is nn.Conv2d and m.padding_mode == "zeros"]
        calls: dict[nn.Module, list[bool]] = {}

        def hook(mod, inp):
            calls.setdefault(mod, []).append(inp[0] is probe)

        reference = _hooked_forward(fn, probe, probe_args, [m.register_forward_pre_hook(hook) for m in convs])
        stems = [m for m, seen in calls.items() if seen == [True]]
        if any(isinstance(m.padding, str) for m in stems):  # "same"/"valid": unfold needs numbers
            return None
        if not stems or not isinstance(reference, Tensor) or any(True in seen and len(seen) > 1 for seen in calls.values()):
            return None
        copy_, twin = _twin_copy(fn)
        parts = [_Stem(twin[conv], StemSlot()) for conv in stems]
        replace_children(copy_, {p.conv: p.slot for p in parts})
        masker = cls(parts, images, baselines, labels, shared, n_players)
        for s, stem in enumerate(parts):
            if masker._segments(0, s).shape[0] > stem.macs_per_output * MAX_SLOT_FRACTION:
                return None  # the windows see too many players for the slots to pay
        # the copy must not read its input except through the stems: fed NaNs, it must still give
        # the model's output from the slots (filled with the full coalition: the image itself)
        full = torch.ones(1, n_players, dtype=torch.bool, device=images.device)
        with torch.inference_mode():
            masker.fill(torch.zeros(1, dtype=torch.long), full)
            out = copy_(torch.full((), float("nan"), dtype=images.dtype, device=images.device).expand_as(probe),
                        *probe_args)
        scale = float(reference.abs().max()) + 1e-6
        if (not isinstance(out, Tensor) or out.shape != reference.shape
                or not torch.allclose(out, reference, rtol=1e-4, atol=1e-5 * scale)):
            return None
        return copy_, masker

    def model_input(self, b: int) -> Tensor:
        """The copy's input for a batch of ``b``: never read (the slots hold the data), no memory."""
        return self._dummy.expand(b, *self.images.shape[1:])

    def fill(self, idx: Tensor, masks: Tensor) -> None:
        """Put the stem outputs of masked inputs in the slots: idx (B,) long (CPU), masks (B, P) bool."""
        images, counts = torch.unique_consecutive(idx, return_counts=True)
        bounds = [0, *counts.cumsum(0).tolist()]
        masks = masks.to(self.images.device)
        outs: list[list[Tensor]] = [[] for _ in self.stems]
        for j, i in enumerate(images.tolist()):
            keep = masks[bounds[j]:bounds[j + 1]]
            keep = torch.cat([keep, keep.new_zeros(keep.shape[0], 1)], dim=1)  # player P: the padding
            for s, (seg, base, contrib) in enumerate(self._image(i)):
                k = keep[:, seg].to(contrib.dtype)  # (b, K, L)
                y = base.expand(k.shape[0], *base.shape).clone()  # (b, L, C_out)
                for slot in range(seg.shape[0]):
                    y.addcmul_(k[:, slot, :, None], contrib[slot])
                outs[s].append(y)
        for stem, ys in zip(self.stems, outs):
            y = torch.cat(ys) if len(ys) > 1 else ys[0]
            # (B, L, C_out) is the channels_last layout of (B, C_out, Ho, Wo)
            stem.slot.value = y.view(y.shape[0], *stem.out_hw, -1).permute(0, 3, 1, 2)

    def _segments(self, i: int, s: int) -> Tensor:
        """The players each output position of stem s sees in image i: (K, L) long."""
        seg = self._shared_seg.get(s) if self.shared else None
        if seg is None:
            labels = self.labels if self.shared else self.labels[i]
            seg = self.stems[s].windows(labels.cpu(), self.n_players).to(self.images.device)
            if self.shared:
                self._shared_seg[s] = seg
        return seg

    def _image(self, i: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per stem: (seg (K, L) long, base (L, C_out), contributions (K, L, C_out)) of image i."""
        entry = self._cache.get(i)
        if entry is not None:
            self._cache.move_to_end(i)
            return entry
        labels = self.labels if self.shared else self.labels[i]
        diff = self.images[i] - self.baselines[i]
        entry = []
        for s, stem in enumerate(self.stems):
            seg = self._segments(i, s)
            base = stem.out(self.baselines[i:i + 1])  # (1, C_out, Ho, Wo)
            stem.out_hw = tuple(base.shape[-2:])
            entry.append((seg, base.flatten(2)[0].t().contiguous(), stem.contributions(diff, labels, seg, self.n_players)))
        size = sum(c.numel() * c.element_size() for _, _, c in entry)
        while self._cache and self._cache_left < size:
            _, old = self._cache.popitem(last=False)
            self._cache_left += sum(c.numel() * c.element_size() for _, _, c in old)
        self._cache[i] = entry
        self._cache_left -= size
        return entry
