"""The FST-Matching model (docs/method.md §6): two identity encoders whose *identity-irrelevant* feature
parts feed a real/fake head.

    x ──source encoder──> f_s ──SE split──> f_s·w_s ──> source head (source identity)
                                      └──> a = f_s·(1−w_s) ─┐
    x ──target encoder──> f_t ──SE split──> f_t·w_t ──> target head (target identity)
                                      └──> b = f_t·(1−w_t) ─┴─> h([b, a]) -> det logits (N, 2)

Interaction of the two irrelevant parts, per class: I = h(a,b) − h(0,b) − h(a,0) + h(0,0).
Loss = CE(h(a,b), det) + 0.5·CE(source) + 1.0·CE(target) − λ·mean_batch(I[y] − I[1−y]).

Fixes over the reference code:

1. **h must be non-linear.** The reference's h is one linear layer, h(z) = W z + c with
   z = [b, a], so h(a,b) = W_b b + W_a a + c, h(0,b) = W_b b + c, h(a,0) = W_a a + c,
   h(0,0) = c, and I = 0 for every input and every weight: its interaction loss is a constant
   with zero gradient. Here h is a two-layer MLP (``head="mlp"``, default); ``head="linear"``
   rebuilds the reference to demonstrate the bug (tests/models/test_fstmatching.py).
2. **Per-sample indexing.** The reference indexes I with the whole label vector; the intended
   quantity is, for each sample, I at its true class minus I at the other class.
3. **Bounded interaction (``interaction_bound="tanh"``, default).** I is linear in the last layer
   of h (the biases cancel), so scaling that layer by k scales I by k: the unbounded term
   −λ·(I[y] − I[1−y]) can be driven to −∞ by growing weights instead of learning anything.
   ``"tanh"`` uses tanh(I[y] − I[1−y]) per sample (gradient unchanged near 0, total bounded by λ);
   ``"none"`` keeps the reference's unbounded form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fstmatch.errors import UserError
from fstmatch.models.registry import register_model
from fstmatch.models.roles import check_num_identities, create_backbone

HEAD_KINDS = ("mlp", "linear")
INTERACTION_BOUNDS = ("tanh", "none")


class SplitSE(nn.Module):
    """Squeeze-excitation split of a pooled feature f (N, C): w = σ(W2 relu(W1 f)) in (0, 1)^C.

    ``forward(f) -> (relevant f·w, irrelevant f·(1−w), w)``, each (N, C).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, f: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = torch.sigmoid(self.fc2(self.relu(self.fc1(f))))
        return f * w, f * (1 - w), w


class DetectionHead(nn.Module):
    """h: [b, a] (N, 2C) -> real/fake logits (N, 2). ``kind="mlp"``: Linear-ReLU-Linear
    (non-linear, so the interaction is real); ``kind="linear"``: the reference's single layer."""

    def __init__(self, in_features: int, hidden: int, kind: str = "mlp") -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise UserError(f"fstmatching head must be one of {HEAD_KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "mlp":
            self.fc1 = nn.Linear(in_features, hidden)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(hidden, 2)
        else:
            self.fc = nn.Linear(in_features, 2)

    def forward(self, z: Tensor) -> Tensor:
        if self.kind == "mlp":
            return self.fc2(self.act(self.fc1(z)))
        return self.fc(z)


class FSTMatching(nn.Module):
    """FST-Matching on [0, 1] RGB input (N, 3, H, W).

    ``forward(x)`` -> detection logits (N, 2) (what the Shapley engine explains);
    ``forward(x, return_all=True)`` = ``forward_all(x)`` -> dict (use this form under DDP so the
    wrapper sees the forward); ``interaction(x)`` -> I (N, 2); ``loss(...)``.
    """

    def __init__(
        self,
        num_identities: int,
        arch: str = "resnet18",
        width: int = 64,
        pretrained: str | None = None,
        head: str = "mlp",
        head_hidden: int | None = None,
        reduction: int = 16,
        interaction_bound: str = "tanh",
    ) -> None:
        super().__init__()
        check_num_identities("fstmatching", num_identities)
        if interaction_bound not in INTERACTION_BOUNDS:
            raise UserError(
                f"interaction_bound must be one of {INTERACTION_BOUNDS}, got {interaction_bound!r}"
            )
        self.source_encoder = create_backbone(arch, 0, width, pretrained)
        self.target_encoder = create_backbone(arch, 0, width, pretrained)
        c = int(self.source_encoder.num_features)
        self.num_features = 2 * c  # width of forward_features' output [b, a]
        self.num_identities = num_identities
        self.interaction_bound = interaction_bound
        self.source_split = SplitSE(c, reduction)
        self.target_split = SplitSE(c, reduction)
        self.source_head = nn.Linear(c, num_identities)
        self.target_head = nn.Linear(c, num_identities)
        self.det_head = DetectionHead(2 * c, head_hidden or c, head)

    # -- the detection path (what Shapley explains) --------------------------------------------

    def forward_features(self, x: Tensor) -> Tensor:
        """[b, a] (N, 2C): target-irrelevant then source-irrelevant parts."""
        _, a, _ = self.source_split(self.source_encoder.forward_features(x))
        _, b, _ = self.target_split(self.target_encoder.forward_features(x))
        return torch.cat([b, a], dim=1)

    def forward_head(self, f: Tensor) -> Tensor:
        """Detection logits (N, 2) from [b, a]."""
        return self.det_head(f)

    def forward(self, x: Tensor, return_all: bool = False) -> Tensor | dict[str, Tensor]:
        if return_all:
            return self.forward_all(x)
        return self.forward_head(self.forward_features(x))

    # -- everything ----------------------------------------------------------------------------

    def head_interaction(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """(h(a,b), I) for irrelevant parts a, b (N, C): one batched pass of h over the four
        inputs [b,a], [b,0], [0,a], [0,0]; I = h(a,b) − h(0,b) − h(a,0) + h(0,0), (N, 2)."""
        n = a.shape[0]
        za, zb = torch.zeros_like(a), torch.zeros_like(b)
        z = torch.cat(
            [torch.cat([b, a], 1), torch.cat([b, za], 1), torch.cat([zb, a], 1), torch.cat([zb, za], 1)]
        )
        h_ab, h_0b, h_a0, h_00 = self.det_head(z).split(n)
        return h_ab, h_ab - h_0b - h_a0 + h_00

    def forward_all(self, x: Tensor) -> dict[str, Tensor]:
        """Dict: ``det`` (N, 2), ``source`` / ``target`` (N, num_identities) identity logits,
        ``a`` / ``b`` (N, C) source-/target-irrelevant parts, ``w_source`` / ``w_target`` (N, C)
        SE weights, ``interaction`` (N, 2)."""
        s_rel, a, w_s = self.source_split(self.source_encoder.forward_features(x))
        t_rel, b, w_t = self.target_split(self.target_encoder.forward_features(x))
        det, inter = self.head_interaction(a, b)
        return {
            "det": det,
            "source": self.source_head(s_rel),
            "target": self.target_head(t_rel),
            "a": a,
            "b": b,
            "w_source": w_s,
            "w_target": w_t,
            "interaction": inter,
        }

    def interaction(self, x: Tensor) -> Tensor:
        """I = h(a,b) − h(0,b) − h(a,0) + h(0,0) per class: (N, 2)."""
        _, a, _ = self.source_split(self.source_encoder.forward_features(x))
        _, b, _ = self.target_split(self.target_encoder.forward_features(x))
        return self.head_interaction(a, b)[1]

    # -- loss ----------------------------------------------------------------------------------

    def interaction_gap(self, interaction: Tensor, det: Tensor) -> Tensor:
        """Per sample I[y] − I[1−y] (N,), through tanh when ``interaction_bound="tanh"``."""
        idx = det.long().view(-1, 1)
        gap = interaction.gather(1, idx).squeeze(1) - interaction.gather(1, 1 - idx).squeeze(1)
        return torch.tanh(gap) if self.interaction_bound == "tanh" else gap

    def loss_from_outputs(
        self,
        out: dict[str, Tensor],
        det: Tensor,
        source: Tensor,
        target: Tensor,
        lam: float = 100.0,
        source_weight: float = 0.5,
        target_weight: float = 1.0,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss from :meth:`forward_all`'s dict (no parameters used: safe after a DDP forward).

        ``total = det + source_weight·source + target_weight·target − lam·interaction`` where
        ``interaction = mean_batch(gap)`` (see :meth:`interaction_gap`). Returns (total, terms)
        with the four terms detached for logging.
        """
        terms = {
            "det": F.cross_entropy(out["det"], det),
            "source": F.cross_entropy(out["source"], source),
            "target": F.cross_entropy(out["target"], target),
            "interaction": self.interaction_gap(out["interaction"], det).mean(),
        }
        total = (
            terms["det"]
            + source_weight * terms["source"]
            + target_weight * terms["target"]
            - lam * terms["interaction"]
        )
        return total, {k: v.detach() for k, v in terms.items()}

    def loss(
        self,
        x: Tensor,
        det: Tensor,
        source: Tensor,
        target: Tensor,
        lam: float = 100.0,
        source_weight: float = 0.5,
        target_weight: float = 1.0,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """docs/method.md §6 loss for images x (N, 3, H, W) and labels (N,): (total, {det, source, target,
        interaction})."""
        return self.loss_from_outputs(
            self.forward_all(x), det, source, target, lam, source_weight, target_weight
        )


@register_model()
def fstmatching(
    num_identities: int,
    arch: str = "resnet18",
    width: int = 64,
    pretrained: str | None = None,
    head: str = "mlp",
    head_hidden: int | None = None,
    reduction: int = 16,
    interaction_bound: str = "tanh",
) -> FSTMatching:
    """FST-Matching (docs/method.md §6); ``pretrained`` initialises both encoders."""
    return FSTMatching(
        num_identities, arch, width, pretrained, head, head_hidden, reduction, interaction_bound
    )
