"""Private helpers of the Shapley engine: input checks, baselines, model preparation and the batched
value function ``v(S)`` that every estimator calls.

Coalitions are boolean masks over the ``G*G`` cells in row-major order (cell ``r*G + c`` covers rows
``r*ch:(r+1)*ch`` and columns ``c*cw:(c+1)*cw``). A masked input keeps the image where the mask is
true and the baseline elsewhere; masking acts on the model's input *as given* (for fstmatch models:
[0, 1] pixels, before their internal normalisation).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fstmatch.errors import UserError

Model = Callable[..., torch.Tensor]


class ForwardArgs:
    """``additional_forward_args``, passed after the masked batch on every call (captum's convention):
    a tensor whose first dimension is N (one row per image) gets the rows of the batch's images; any
    other argument is passed as is."""

    def __init__(self, args, n: int, device: torch.device) -> None:
        if args is None:
            args = ()
        elif not isinstance(args, tuple):
            args = (args,)
        self.n = n
        self.per_image = [isinstance(a, torch.Tensor) and a.ndim >= 1 and a.shape[0] == n for a in args]
        self.args = tuple(a.to(device) if p else a for a, p in zip(args, self.per_image, strict=True))

    def __bool__(self) -> bool:
        return bool(self.args)

    def rows(self, idx: torch.Tensor) -> tuple:
        """The arguments for a batch of the images ``idx`` (CPU long)."""
        return tuple(a[idx.to(a.device)] if p else a for a, p in zip(self.args, self.per_image, strict=True))

    def slice(self, lo: int, hi: int):
        """The arguments of the images lo..hi-1 (for sharding)."""
        out = ForwardArgs(None, hi - lo, torch.device("cpu"))
        out.args = tuple(a[lo:hi] if p else a for a, p in zip(self.args, self.per_image, strict=True))
        out.per_image = list(self.per_image)
        return out


class ShapleyInputError(UserError, ValueError):
    """A bad argument to :func:`fstmatch.explain.shapley` (both a ``UserError`` and a ``ValueError``)."""


# ----------------------------------------------------------------------------------------------------
# Input checks


def check_images(images: torch.Tensor, grid: int | None) -> tuple[int, int]:
    """Validate ``images`` (N, C, H, W) float and ``grid``; return the cell size ``(ch, cw)``
    (``grid=None``, with a feature mask: the image size (H, W))."""
    if not isinstance(images, torch.Tensor):
        raise ShapleyInputError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ShapleyInputError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ShapleyInputError(f"images must be floating point (e.g. float32 in [0, 1]), got {images.dtype}")
    if images.shape[0] == 0:
        raise ShapleyInputError("images is empty (N = 0)")
    if not torch.isfinite(images).all():
        raise ShapleyInputError("images contain NaN or infinite values")
    if grid is None:
        return tuple(images.shape[-2:])
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ShapleyInputError(f"grid must be a positive integer, got {grid!r}")
    h, w = images.shape[-2:]
    if h % grid or w % grid:
        raise ShapleyInputError(
            f"grid={grid} does not divide the image size {h}x{w}: cells must tile the image exactly "
            f"(choose a grid dividing both, e.g. one of {_divisors(math.gcd(h, w))}, or resize the images)"
        )
    return h // grid, w // grid


#: most players ``exact`` enumerates (2**12 = 4,096 coalitions)
MAX_EXACT_PLAYERS = 12


def check_feature_mask(mask, images: torch.Tensor) -> torch.Tensor:
    """A feature mask as (N, H, W) int64 on the CPU, labels 0..K-1 with the same K for every image.

    Accepts (H, W), (1 or N, H, W) or (1 or N, 1, H, W) integer tensors (or numpy arrays)."""
    n, _, h, w = images.shape
    if not isinstance(mask, torch.Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError):
            raise ShapleyInputError(f"feature_mask must be an integer tensor (H, W) or (N, H, W), got "
                                    f"{type(mask).__name__}") from None
    if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
        raise ShapleyInputError(f"feature_mask must hold integer labels 0..K-1, got dtype {mask.dtype}")
    shape = tuple(mask.shape)
    m = mask
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim == 2:
        m = m.unsqueeze(0)
    if m.ndim != 3 or m.shape[0] not in (1, n) or tuple(m.shape[1:]) != (h, w):
        raise ShapleyInputError(
            f"feature_mask of shape {shape} does not match the inputs {tuple(images.shape)}: expected "
            f"({h}, {w}), (1, {h}, {w}) or ({n}, {h}, {w})")
    m = m.long().cpu().expand(n, h, w)  # one mask for all images stays one (a view), not N copies
    if int(m.min()) < 0:
        raise ShapleyInputError(f"feature_mask labels must be >= 0, got {int(m.min())}")
    k = int(m.max()) + 1
    for i in range(m.shape[0] if mask.ndim >= 3 and mask.shape[0] == n else 1):
        present = torch.bincount(m[i].flatten(), minlength=k) > 0
        if not present.all():
            missing = torch.nonzero(~present).flatten().tolist()
            raise ShapleyInputError(
                f"feature_mask labels must be 0..K-1 with none missing (K = {k} from its largest label); "
                f"image {i} lacks label(s) {missing[:10]}: relabel to consecutive integers, e.g. "
                "torch.unique(mask, return_inverse=True)[1], the same K for every image")
    return m


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0 and d <= 64][:12]


def check_targets(targets: torch.Tensor | Sequence[int] | int | None, n: int) -> torch.Tensor:
    """Targets as an int64 tensor (N,); a single int applies to every image; None: output 0 (for a
    forward function with one output per input)."""
    if targets is None:
        return torch.zeros(n, dtype=torch.long)
    if isinstance(targets, int) and not isinstance(targets, bool):
        return torch.full((n,), targets, dtype=torch.long)
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ShapleyInputError(f"targets must be integer class indices, got dtype {t.dtype}")
    t = t.reshape(-1).long().cpu()
    if t.numel() != n:
        raise ShapleyInputError(f"targets has {t.numel()} entries for {n} images")
    if (t < 0).any():
        raise ShapleyInputError(f"targets must be >= 0, got {t.min().item()}")
    return t


# ----------------------------------------------------------------------------------------------------
# Baselines


def make_baseline(
    baseline: str | float | torch.Tensor, images: torch.Tensor, cell: tuple[int, int]
) -> torch.Tensor:
    """The image shown where a cell is absent, shape (N, C, H, W) like ``images``.

    ``"zero"``: zeros (black pixels for [0, 1] input: the paper's choice). ``"mean"``: each image's
    mean colour (per channel). ``"blur"``: the image blurred by a Gaussian of sigma = one cell side
    (reflect padding), which hides the detail inside a cell but keeps the coarse layout. A number:
    that constant. A tensor: broadcast to (N, C, H, W) (e.g. (C, H, W), (C, 1, 1) or (N, C, H, W)).
    """
    if isinstance(baseline, str):
        if baseline == "zero":
            return torch.zeros_like(images)
        if baseline == "mean":
            return images.mean(dim=(2, 3), keepdim=True).expand_as(images).contiguous()
        if baseline == "blur":
            return _gaussian_blur(images, sigma=float(max(cell)))
        raise ShapleyInputError(f"baseline must be 'zero', 'mean', 'blur', a number or a tensor, got {baseline!r}")
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(images, float(baseline))
    if isinstance(baseline, torch.Tensor):
        try:
            b = torch.broadcast_to(baseline.to(device=images.device, dtype=images.dtype), images.shape)
        except RuntimeError:
            raise ShapleyInputError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to the images "
                f"{tuple(images.shape)}"
            ) from None
        if not torch.isfinite(b).all():
            raise ShapleyInputError("baseline contains NaN or infinite values")
        return b.contiguous()
    raise ShapleyInputError(f"baseline must be 'zero', 'mean', 'blur', a number or a tensor, got {type(baseline).__name__}")


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (N, C, H, W) -> same, radius 3 sigma, reflect padding."""
    h, w = images.shape[-2:]
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    mode = "reflect" if radius < min(h, w) else "replicate"
    out = F.pad(images, (radius, radius, radius, radius), mode=mode)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out


# ----------------------------------------------------------------------------------------------------
# Model preparation


@contextlib.contextmanager
def prepared_model(
    model: Model, *, optimize: bool, dtype: torch.dtype | None, device: torch.device, probe: torch.Tensor,
    probe_args: tuple = (), hoist_normalize: bool = False,
) -> Iterator[tuple[Model, torch.dtype | None, nn.Module | None]]:
    """Yield ``(fn, input_dtype, normalize)``: the callable to run, the dtype to feed it (None: as
    images) and the input normalisation taken out of ``fn`` (None: none was).

    With ``hoist_normalize`` (and ``optimize``, no ``dtype``), the copy's input normalisation may be
    removed (:func:`hoist_input_normalize`): the caller then applies ``normalize`` to its images and
    baselines once, before masking.

    The user's model is never mutated for good. A module in train mode triggers a warning and is
    evaluated in eval mode (every submodule's mode is restored on exit). With ``optimize`` or a
    ``dtype``, a module is deep-copied; the copy has BatchNorm folded into the convolutions that
    feed it (checked on ``probe``, one image (1, C, H, W)), channels_last weights and, with ``dtype``,
    weights in that dtype. A plain callable with a ``dtype`` runs under autocast instead.
    """
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ShapleyInputError(f"forward_func must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if dtype is None:
            yield model, None, None
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield model, None, None
        return

    modes = [(m, m.training) for m in model.modules()]
    if model.training:
        warnings.warn(
            "shapley(): the model is in train mode; evaluating it in eval mode for this call "
            "(its mode is restored afterwards)",
            stacklevel=5,
        )
    try:
        model.eval()
        fn: nn.Module = model
        hoisted = None
        if optimize or dtype is not None:
            fn, hoisted = _optimized_copy(model, optimize=optimize, dtype=dtype, probe=probe, probe_args=probe_args,
                                          hoist_normalize=hoist_normalize)
        yield fn, dtype, hoisted
    finally:
        for m, mode in modes:
            m.training = mode


def _optimized_copy(model: nn.Module, *, optimize: bool, dtype: torch.dtype | None, probe: torch.Tensor,
                    probe_args: tuple = (), hoist_normalize: bool = False) -> tuple[nn.Module, nn.Module | None]:
    try:
        fn = copy.deepcopy(model)
    except Exception as e:  # a module that cannot be copied: run it as given
        warnings.warn(f"shapley(): cannot copy the model ({e}); running it without optimisations", stacklevel=6)
        return model, None
    fn.eval().requires_grad_(False)
    hoisted = None
    if optimize and hoist_normalize and dtype is None:
        fn, hoisted = hoist_input_normalize(fn, probe, probe_args)
    if optimize:
        fn = fold_batchnorm(fn, probe if hoisted is None else hoisted(probe), probe_args)
        fn = fn.to(memory_format=torch.channels_last)
    if dtype is not None:
        fn = fn.to(dtype=dtype)
    return fn, hoisted


def hoist_input_normalize(module: nn.Module, probe: torch.Tensor, probe_args: tuple = ()
                          ) -> tuple[nn.Module, nn.Module | None]:
    """Take the per-pixel input normalisation (:class:`~fstmatch.models.layers.ImageNormalize`) out
    of a copy of ``module``, so that a caller masking many inputs of the same
    images normalises images and baselines once instead of every masked batch (a sixth of a forward
    of the laptop demo's 64-px ResNet, where it runs on channels_last tensors).

    Exact: normalisation maps each value on its own, so normalising the masked image equals masking
    the normalised images, bit for bit. Applies only when every ImageNormalize that sees the model's
    input sees nothing else and all share mean/std, and the stripped model reproduces the original's
    output on ``probe`` exactly; otherwise returns ``(module, None)``.
    Returns ``(a copy with those normalisations replaced by identities, the normalisation)``.
    """
    layers = sys.modules.get("fstmatch.models.layers")  # not imported: no model holds one (and the
    if layers is None:                                  # engine stays free of the models' dependencies)
        return module, None
    norms = [m for m in module.modules() if isinstance(m, layers.ImageNormalize)]
    if not norms:
        return module, None
    seen: dict[nn.Module, set[bool]] = {}

    def hook(mod, inp):
        seen.setdefault(mod, set()).add(inp[0] is probe)

    reference = _hooked_forward(module, probe, probe_args, [m.register_forward_pre_hook(hook) for m in norms])
    first = [m for m, kinds in seen.items() if kinds == {True}]
    if not first or any(kinds == {True, False} for kinds in seen.values()) or not isinstance(reference, torch.Tensor):
        return module, None
    norm = first[0]
    if any(not (torch.equal(m.mean, norm.mean) and torch.equal(m.std, norm.std)) for m in first):
        return module, None
    stripped, twin = _twin_copy(module)
    _to_identity(stripped, {twin[m] for m in first})
    with torch.inference_mode():
        hoisted = copy.deepcopy(norm)
        if not torch.equal(stripped(hoisted(probe), *probe_args), reference):
            return module, None  # the raw input is used elsewhere too
    return stripped, hoisted


def fold_batchnorm(module: nn.Module, probe: torch.Tensor, probe_args: tuple = ()) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` into the ``Conv2d`` whose output it normalises.

    Works on any module without tracing its code: one forward of ``probe`` with hooks finds the
    pairs where a BatchNorm's input *is* a Conv2d's output tensor (and each such conv / BN is only
    ever called as that pair). The folded copy must reproduce the original's output on ``probe``;
    otherwise (e.g. the conv output is also used elsewhere) the module is returned unfolded.
    Returns a folded deep copy or ``module`` itself.
    """
    bns = [m for m in module.modules() if type(m) is nn.BatchNorm2d and m.running_mean is not None]
    if not bns:
        return module
    outputs: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    calls: dict[nn.Module, int] = {}
    pairs: dict[nn.BatchNorm2d, set] = {}

    def conv_hook(mod, _inp, out):
        calls[mod] = calls.get(mod, 0) + 1
        outputs[id(out)] = (mod, out)

    def bn_hook(mod, inp):
        calls[mod] = calls.get(mod, 0) + 1
        hit = outputs.get(id(inp[0]))
        pairs.setdefault(mod, set()).add(hit[0] if hit is not None and hit[1] is inp[0] else None)

    handles = [m.register_forward_hook(conv_hook) for m in module.modules() if type(m) is nn.Conv2d]
    handles += [m.register_forward_pre_hook(bn_hook) for m in bns]
    try:
        reference = _hooked_forward(module, probe, probe_args, handles)
    finally:
        outputs.clear()
    folds = {bn: next(iter(convs)) for bn, convs in pairs.items() if len(convs) == 1 and None not in convs}
    used = list(folds.values())
    folds = {bn: conv for bn, conv in folds.items()
             if used.count(conv) == 1 and calls.get(conv) == calls.get(bn) and conv.out_channels == bn.num_features}
    if not folds or not isinstance(reference, torch.Tensor):
        return module
    folded, twin = _twin_copy(module)
    for bn, conv in folds.items():
        _fold_into(twin[conv], twin[bn])
    _to_identity(folded, {twin[bn] for bn in folds})
    with torch.inference_mode():
        out = folded(probe, *probe_args)
    scale = float(reference.abs().max()) + 1e-6
    if out.shape != reference.shape or not torch.allclose(out, reference, rtol=1e-3, atol=1e-4 * scale):
        return module
    return folded


def _hooked_forward(module: nn.Module, probe: torch.Tensor, probe_args: tuple, handles: list) -> object:
    """``module(probe, *probe_args)`` in inference mode with the hooks of ``handles``, removed after."""
    try:
        with torch.inference_mode():
            return module(probe, *probe_args)
    finally:
        for h in handles:
            h.remove()


def _twin_copy(module: nn.Module) -> tuple[nn.Module, dict[nn.Module, nn.Module]]:
    """A deep copy of ``module`` and the map from each of its submodules to the copy's twin."""
    twin = copy.deepcopy(module)
    return twin, dict(zip(module.modules(), twin.modules()))  # deepcopy keeps the module order


def _to_identity(root: nn.Module, modules: set[nn.Module]) -> None:
    """Replace every child of ``root``'s tree that is one of ``modules`` by ``nn.Identity`` (in place)."""
    replace_children(root, {m: nn.Identity() for m in modules})


def replace_children(root: nn.Module, replacements: dict[nn.Module, nn.Module]) -> None:
    """Put ``replacements[child]`` wherever such a child sits in ``root``'s tree (in place)."""
    for parent in root.modules():
        for name, child in list(parent.named_children()):
            if child in replacements:
                setattr(parent, name, replacements[child])


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)) with bn's running statistics (in place)."""
    with torch.no_grad():
        scale = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else 0.0
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + shift
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype), requires_grad=False)
        else:
            conv.bias.copy_(new_bias)


def model_device(model: Model, images: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    """Where and in which float dtype to build inputs: the model's first floating parameter (or
    buffer), else the images' device and dtype."""
    if isinstance(model, nn.Module):
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                return t.device, t.dtype
    return images.device, images.dtype


# ----------------------------------------------------------------------------------------------------
# The value function


def flat_labels(labels: torch.Tensor | None, n: int) -> tuple[torch.Tensor | None, bool]:
    """A feature mask (N, H, W) as each pixel's player: ``(labels (H*W,), True)`` when all images
    share one mask (a view, no per-image copy), else ``(labels (N, H*W), False)``; None: the grid."""
    if labels is None:
        return None, False
    shared = labels.shape[0] == 1 or labels.stride(0) == 0
    return (labels[0].reshape(-1) if shared else labels.reshape(n, -1)), shared


class ValueFunction:
    """``v(S)`` for many (image, coalition) pairs at once, ``batch_size`` masked inputs per forward.

    Holds the images, baselines and targets on the model's device; counts forwards per image.
    ``walker`` (optional, e.g. ``_incremental.ResNetWalker``) evaluates whole permutation walks
    incrementally; without it ``walks`` runs full forwards of every prefix.
    Peak memory: a few (batch_size, C, H, W) tensors plus the model's activations for that batch.
    """

    def __init__(
        self,
        fn: Model,
        images: torch.Tensor,
        baselines: torch.Tensor,
        targets: torch.Tensor,
        grid: int | None,
        *,
        batch_size: int,
        input_dtype: torch.dtype | None,
        channels_last: bool,
        progress: Callable[[int], None] | None = None,
        walker=None,
        labels: torch.Tensor | None = None,
        forward_args: ForwardArgs | None = None,
        single_output: bool = False,
        stem=None,
    ) -> None:
        self.fn = fn
        # kept in the format the model runs in, so that masking writes its input directly
        fmt = torch.channels_last if channels_last and images.dim() == 4 else torch.contiguous_format
        self.images = images.contiguous(memory_format=fmt)
        self.baselines = baselines.expand_as(images).contiguous(memory_format=fmt)
        self.targets = targets.to(images.device)
        self.grid = grid
        self.batch_size = batch_size
        self.input_dtype = input_dtype
        self.channels_last = channels_last
        self.progress = progress
        n, _, h, w = images.shape
        self.cell = (h // grid, w // grid) if grid is not None else (h, w)
        #: each pixel's player (a feature mask) on the images' device: (H*W,) when all images share
        #: one mask (indexed, no per-image copy), else (N, H*W); None: the grid
        self.labels, self.shared_labels = flat_labels(labels, n)
        if self.labels is not None:
            self.labels = self.labels.to(images.device)
        self.forward_args = forward_args
        #: target=None: the function must have one output per input
        self.single_output = single_output
        self.n_forward = torch.zeros(n, dtype=torch.long)
        self._checked = False
        #: optional incremental evaluator of walks (``_incremental.ResNetWalker``); None: full forwards
        self.walker = walker
        #: optional ``_stem.StemMasker``: fills ``fn``'s stem slots from coalitions (no masked images)
        self.stem = stem

    def evaluate(self, image_ids: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        """``v`` for every (image, coalition) pair: image_ids (A,) long, coalitions (K, G*G) bool ->
        (A, K) float64 on CPU. Pairs are streamed image-major in batches of ``batch_size``."""
        a, k = image_ids.numel(), coalitions.shape[0]
        out = torch.empty(a * k, dtype=torch.float64)
        for start in range(0, a * k, self.batch_size):
            rows = torch.arange(start, min(start + self.batch_size, a * k))
            out[rows] = self._forward(image_ids[rows // k], coalitions[rows % k])
        self.n_forward[image_ids] += k
        return out.view(a, k)

    def walks(self, image_ids: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
        """``v`` along permutation walks: orders (c, G*G) long -> (A, c, G*G - 1) float64, entry
        ``[a, j, t]`` = v(first t+1 cells of ordering j) for image ``image_ids[a]``."""
        c, p = orders.shape
        if self.walker is not None:
            out = self.walker.walks(image_ids, orders, progress=self.progress)
            self.n_forward[image_ids] += c * (p - 1)
            return out
        pos = orders.argsort(dim=1)
        coalitions = (pos.unsqueeze(1) < torch.arange(1, p).view(1, -1, 1)).reshape(-1, p)  # (c*(P-1), P)
        return self.evaluate(image_ids, coalitions).view(image_ids.numel(), c, p - 1)

    def _forward(self, idx: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        b = idx.numel()
        cpu_idx, idx = idx, idx.to(self.images.device)
        if self.stem is not None:
            self.stem.fill(cpu_idx, masks)
            x = self.stem.model_input(b)
        else:
            x = self._masked_input(idx, masks)
        with torch.inference_mode():
            logits = self.fn(x, *self.forward_args.rows(cpu_idx)) if self.forward_args else self.fn(x)
        if isinstance(logits, torch.Tensor) and logits.ndim == 1 and logits.shape[0] == b:
            logits = logits.view(b, 1)  # one output per input (a scalar function)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != b:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ShapleyInputError(
                f"the forward function must return a tensor of shape (batch, outputs) or (batch,); it returned "
                f"{shape} for a batch of shape {tuple(x.shape)}")
        if not self._checked:
            k = logits.shape[1]
            if self.single_output and k != 1:
                raise ShapleyInputError(
                    f"the forward function returned {tuple(logits.shape)} ({k} outputs per input): pass target= "
                    "(one output index per input, or one int for all)")
            if (self.targets >= k).any():
                bad = int(self.targets.max())
                raise ShapleyInputError(f"target class {bad} is out of range: the model has {k} outputs (0..{k - 1})")
            self._checked = True
        value = logits.gather(1, self.targets[idx].view(-1, 1)).squeeze(1).double()
        if not torch.isfinite(value).all():
            bad = idx[~torch.isfinite(value)][0].item()
            raise ShapleyInputError(
                f"the model returned a non-finite target logit (NaN/inf) for image {bad} on a masked input; "
                "check the model and the baseline"
            )
        if self.progress is not None:
            self.progress(b)
        return value.cpu()

    def _masked_input(self, idx: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The masked images, (B, C, H, W) in the model's dtype and memory format: idx (B,) long on the
        images' device, masks (B, P) bool."""
        b, g, (ch, cw) = idx.numel(), self.grid, self.cell
        dev = self.images.device
        if self.labels is None:
            pix = masks.to(dev).view(b, 1, g, 1, g, 1).expand(b, 1, g, ch, g, cw).reshape(b, 1, g * ch, g * cw)
        else:
            keep = masks.to(dev)[:, self.labels] if self.shared_labels else masks.to(dev).gather(1, self.labels[idx])
            pix = keep.view(b, 1, *self.images.shape[-2:])
        x = torch.where(pix, self.images[idx], self.baselines[idx])
        if self.input_dtype is not None:
            x = x.to(self.input_dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
