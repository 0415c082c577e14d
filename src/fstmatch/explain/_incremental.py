"""Permutation walks on fstmatch ResNets, recomputing only what each added cell changes.

A walk adds one cell per step, so consecutive masked images differ in one cell. In the first
stages of a ResNet the change stays local: a 14-px cell of a 224-px image touches a ~10x10 window
of the stem's 112x112 output and a ~15x15 window of layer2's 28x28 output. Each walk keeps the
activations of those stages (padded caches); a step writes the cell's pixels into the input cache,
recomputes every early convolution on a fixed-size window around the change (same weights, same
arithmetic as the full layer on that window), writes the window back, and runs the remaining
stages in full. Values equal the full forward's up to float rounding (tested); on ResNet-18 at
224 px and a 16x16 grid this does about half the multiply-adds of a full forward.

Used by ``shapley(..., optimize=True)`` on CPU for :class:`~fstmatch.models.resnet.ResNet` with
BasicBlocks (ResNet-18/34); other models take the ordinary batched path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fstmatch.explain._utils import ShapleyInputError

#: Stop recomputing windows at the first block whose output window covers more than this fraction
#: of its map: the full layer is then as cheap, without the gather/scatter.
MAX_WINDOW_FRACTION = 0.5
#: Walks advanced together (each keeps ~10 MB of caches for ResNet-18 at 224 px).
WALKS_PER_BATCH = 32
#: Use the walker only where a step costs at most this fraction of a full forward's multiply-adds,
#: and a full forward at least MIN_FORWARD_MACS: on small nets (the demo's width-8 ResNet-18 at
#: 48 px, 1.5M multiply-adds) the gathers cost as much as the windows save (measured: no gain).
MAX_STEP_COST = 0.75
MIN_FORWARD_MACS = 50e6


@dataclass(frozen=True)
class _Window:
    """A window of ``length`` output rows (or columns) per cell position: ``start[cell_row]``."""

    start: Tensor  # (G,) long, first output row of the window for each cell row
    length: int
    size: int  # rows of the map


def _through(win: _Window, k: int, s: int, p: int, size_out: int) -> _Window:
    """The window of outputs of a (k, s, p) conv/pool that depend on input window ``win``, clamped
    inside the output map (shifting keeps the length; a window is a superset of the change)."""
    length = min((win.length + k - 2) // s + 1, size_out)
    first = -torch.div(-(win.start + p - k + 1), s, rounding_mode="floor")  # ceil
    return _Window(first.clamp(0, size_out - length), length, size_out)


def supports(model: nn.Module) -> bool:
    """An fstmatch ResNet of BasicBlocks whose shortcuts are identity (stride 1) or conv 1x1 + BN."""
    from fstmatch.models.resnet import BasicBlock, ResNet

    if not isinstance(model, ResNet):
        return False
    for blk in (b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer):
        if not isinstance(blk, BasicBlock):
            return False
        ds = blk.downsample
        if ds is None and blk.conv1.stride != (1, 1):
            return False
        if ds is not None and not (isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[0], nn.Conv2d)):
            return False
    return True


class ResNetWalker:
    """``walks(image_ids, orders)`` -> v along each ordering for a (BN-folded or not) fstmatch ResNet.

    images and baselines: (N, C, H, W) raw model inputs (the model normalises inside); targets (N,).
    """

    def __init__(
        self, model: nn.Module, images: Tensor, baselines: Tensor, targets: Tensor, grid: int,
        *, max_fraction: float = MAX_WINDOW_FRACTION, walks_per_batch: int = WALKS_PER_BATCH,
    ) -> None:
        self.model = model
        with torch.inference_mode():
            self.images = model.normalize(images)  # normalisation is per pixel: mask after it
            self.baselines = model.normalize(baselines)
        self.targets = targets
        self.grid = grid
        self.walks_per_batch = walks_per_batch
        h, w = images.shape[-2:]
        self.cell = (h // grid, w // grid)
        self.blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
        self._plan(h, w, max_fraction)

    # -- geometry ------------------------------------------------------------------------------

    def _plan(self, h: int, w: int, max_fraction: float) -> None:
        """Windows of every incremental op, for rows (index 0) and columns (index 1)."""
        cells = torch.arange(self.grid)
        wins = [_Window(cells * c, c, size) for c, size in zip(self.cell, (h, w), strict=True)]
        sizes = [(h + 2 * 3 - 7) // 2 + 1, (w + 2 * 3 - 7) // 2 + 1]
        self.stem = [_through(win, 7, 2, 3, s) for win, s in zip(wins, sizes, strict=True)]
        pooled = [(s + 2 - 3) // 2 + 1 for s in sizes]
        self.pool = [_through(win, 3, 2, 1, s) for win, s in zip(self.stem, pooled, strict=True)]
        self.block_windows: list[tuple[list[_Window], list[_Window]]] = []
        conv = self.model.conv1
        per_pixel = conv.in_channels * conv.out_channels * 49
        full = per_pixel * sizes[0] * sizes[1]  # multiply-adds of a full forward / of a step
        window = per_pixel * self.stem[0].length * self.stem[1].length
        current, incremental = self.pool, True
        for blk in self.blocks:
            s = blk.conv1.stride[0]
            out = [(win.size - 1) // s + 1 for win in current]
            hid = [_through(win, 3, s, 1, o) for win, o in zip(current, out, strict=True)]
            res = [_through(win, 3, 1, 1, o) for win, o in zip(hid, out, strict=True)]
            per_pixel = 9 * (blk.conv1.in_channels + blk.conv2.in_channels) * blk.conv2.out_channels
            full += per_pixel * out[0] * out[1]
            incremental = incremental and res[0].length * res[1].length <= max_fraction * out[0] * out[1]
            if incremental:
                self.block_windows.append((hid, res))
                current = res
                window += per_pixel * res[0].length * res[1].length
            else:  # this block and the rest run in full: only their map sizes matter from here
                window += per_pixel * out[0] * out[1]
                current = [_Window(torch.zeros_like(win.start), o, o) for win, o in zip(current, out, strict=True)]
        self.n_incremental = len(self.block_windows)
        #: estimated fraction of a full forward's convolution multiply-adds a step costs
        self.step_cost = window / full
        self.forward_macs = full

    # -- caches --------------------------------------------------------------------------------

    def _initial_state(self, image_ids: Tensor) -> list[Tensor]:
        """Caches of the empty coalition (the baseline image) for each walk: every tensor padded by
        one pixel (three for the input), zeros outside the map (= the convs' zero padding)."""
        m = self.model
        x = self.baselines[image_ids]
        with torch.inference_mode():
            state = [F.pad(x, (3, 3, 3, 3))]
            a = m.relu(m.bn1(m.conv1(x)))
            state.append(F.pad(a, (1, 1, 1, 1)))  # post-ReLU >= 0: zero padding = max-pool's -inf
            x = m.maxpool(a)
            state.append(F.pad(x, (1, 1, 1, 1)))
            for blk in self.blocks[: self.n_incremental]:
                hid = blk.relu(blk.bn1(blk.conv1(x)))
                x = blk(x)
                state += [F.pad(hid, (1, 1, 1, 1)), F.pad(x, (1, 1, 1, 1))]
        return [t.contiguous(memory_format=torch.channels_last) for t in state]

    @staticmethod
    def _gather(cache: Tensor, rows: Tensor, cols: Tensor, batch: Tensor | None = None) -> Tensor:
        """Crops (B, C, len(rows[0]), len(cols[0])) of ``cache`` at per-walk index vectors (rows and
        cols (B, L)); walk b reads ``cache[batch[b]]`` (default: ``cache[b]``)."""
        b = (torch.arange(rows.shape[0]) if batch is None else batch).view(-1, 1, 1)
        return cache.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

    @staticmethod
    def _scatter(cache: Tensor, rows: Tensor, cols: Tensor, values: Tensor) -> None:
        b = torch.arange(cache.shape[0]).view(-1, 1, 1)
        cache.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]] = values.permute(0, 2, 3, 1)

    @staticmethod
    def _span(win: _Window, cell: Tensor, s: int, offset: int, extra: int) -> Tensor:
        """Padded-cache indices of the input rows a window needs: (B, s*(len-1) + 1 + extra)."""
        first = win.start[cell] * s + offset
        return first.view(-1, 1) + torch.arange(s * (win.length - 1) + 1 + extra).view(1, -1)

    @staticmethod
    def _out(win: _Window, cell: Tensor, pad: int) -> Tensor:
        return (win.start[cell] + pad).view(-1, 1) + torch.arange(win.length).view(1, -1)

    # -- one step ------------------------------------------------------------------------------

    def _step(self, state: list[Tensor], image_ids: Tensor, cell: Tensor) -> Tensor:
        """Add cell ``cell[b]`` to walk b; return the target logits (B,)."""
        m = self.model
        gr, gc = cell // self.grid, cell % self.grid
        ch, cw = self.cell
        rows = (gr * ch).view(-1, 1) + torch.arange(ch).view(1, -1)
        cols = (gc * cw).view(-1, 1) + torch.arange(cw).view(1, -1)
        pix = self._gather(self.images, rows, cols, batch=image_ids)
        self._scatter(state[0], rows + 3, cols + 3, pix)
        # stem conv (7, 2, 3) on the padded input, then max-pool (3, 2, 1)
        wr, wc = self.stem
        crop = self._gather(state[0], self._span(wr, gr, 2, 0, 6), self._span(wc, gc, 2, 0, 6))
        a = m.relu(m.bn1(F.conv2d(crop, m.conv1.weight, m.conv1.bias, stride=2)))
        self._scatter(state[1], self._out(wr, gr, 1), self._out(wc, gc, 1), a)
        pr, pc = self.pool
        crop = self._gather(state[1], self._span(pr, gr, 2, 0, 2), self._span(pc, gc, 2, 0, 2))
        self._scatter(state[2], self._out(pr, gr, 1), self._out(pc, gc, 1), F.max_pool2d(crop, 3, 2))
        for i, (blk, (hid, res)) in enumerate(zip(self.blocks, self.block_windows, strict=False)):
            x_cache, h_cache, o_cache = state[2 + 2 * i], state[3 + 2 * i], state[4 + 2 * i]
            s = blk.conv1.stride[0]
            crop = self._gather(x_cache, self._span(hid[0], gr, s, 0, 2), self._span(hid[1], gc, s, 0, 2))
            h = blk.relu(blk.bn1(F.conv2d(crop, blk.conv1.weight, blk.conv1.bias, stride=s)))
            self._scatter(h_cache, self._out(hid[0], gr, 1), self._out(hid[1], gc, 1), h)
            crop = self._gather(h_cache, self._span(res[0], gr, 1, 0, 2), self._span(res[1], gc, 1, 0, 2))
            y = blk.bn2(F.conv2d(crop, blk.conv2.weight, blk.conv2.bias))
            short = self._gather(x_cache, self._span(res[0], gr, s, 1, 0), self._span(res[1], gc, s, 1, 0))
            if blk.downsample is not None:  # conv 1x1 (stride s), then BatchNorm (or Identity once folded)
                short = blk.downsample[1](F.conv2d(short, blk.downsample[0].weight, blk.downsample[0].bias, stride=s))
            self._scatter(o_cache, self._out(res[0], gr, 1), self._out(res[1], gc, 1), blk.relu(y + short))
        x = state[-1][:, :, 1:-1, 1:-1]
        for blk in self.blocks[self.n_incremental:]:
            x = blk(x)
        logits = m.forward_head(m.avgpool(x).flatten(1))
        return logits.gather(1, self.targets[image_ids].view(-1, 1)).squeeze(1)

    def walks(self, image_ids: Tensor, orders: Tensor, progress: Callable[[int], None] | None = None) -> Tensor:
        """v after the first t+1 cells of each ordering: image_ids (A,), orders (c, P) -> (A, c, P-1)
        float64 on CPU. Walks (image, ordering) advance ``walks_per_batch`` at a time."""
        a, (c, p) = image_ids.numel(), orders.shape
        out = torch.empty(a * c, p - 1, dtype=torch.float64)
        pairs_img = image_ids.repeat_interleave(c)
        pairs_ord = orders.repeat(a, 1)
        for start in range(0, a * c, self.walks_per_batch):
            sel = slice(start, min(start + self.walks_per_batch, a * c))
            ids, ords = pairs_img[sel], pairs_ord[sel]
            with torch.inference_mode():
                state = self._initial_state(ids)
                for t in range(p - 1):
                    v = self._step(state, ids, ords[:, t]).double()
                    if not torch.isfinite(v).all():
                        raise ShapleyInputError(
                            "the model returned a non-finite target logit (NaN/inf) on a masked input; "
                            "check the model and the baseline"
                        )
                    out[sel, t] = v.cpu()
                    if progress is not None:
                        progress(ids.numel())
        return out.view(a, c, p - 1)

