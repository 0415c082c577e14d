"""FST-Matching (docs/method.md §6): the interaction term, the reference's linear-head bug, the loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fstmatch.errors import UserError
from fstmatch.models import FSTMatching, create_model, load_model, save_model
from fstmatch.models.fstmatching import DetectionHead


def _tiny(head: str = "mlp", bound: str = "tanh", seed: int = 0) -> FSTMatching:
    torch.manual_seed(seed)
    return create_model("fstmatching", num_identities=5, width=2, head=head, interaction_bound=bound).eval()


def _hand_set_head(model: FSTMatching) -> None:
    """h([b, a]) = relu(b + a − 1) · [1, −1] for one-channel a, b (hidden width 1)."""
    with torch.no_grad():
        model.det_head.fc1.weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.det_head.fc1.bias.copy_(torch.tensor([-1.0]))
        model.det_head.fc2.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.det_head.fc2.bias.zero_()


def test_shapes_and_forward_is_detection() -> None:
    model = _tiny()
    x = torch.rand(3, 3, 32, 32)
    out = model.forward_all(x)
    c = model.source_encoder.num_features  # 16 at width 2
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "det": (3, 2),
        "source": (3, 5),
        "target": (3, 5),
        "a": (3, c),
        "b": (3, c),
        "w_source": (3, c),
        "w_target": (3, c),
        "interaction": (3, 2),
    }
    torch.testing.assert_close(model(x), out["det"])
    torch.testing.assert_close(model.forward_features(x), torch.cat([out["b"], out["a"]], 1))
    assert set(model(x, return_all=True)) == set(out)
    torch.testing.assert_close(model.interaction(x), out["interaction"])
    # the SE split: relevant + irrelevant = the pooled feature
    f_s = model.source_encoder.forward_features(x)
    torch.testing.assert_close(f_s * out["w_source"] + out["a"], f_s)


def test_interaction_exact_on_hand_set_head() -> None:
    model = _tiny()
    model.det_head = DetectionHead(in_features=2, hidden=1, kind="mlp")  # a, b of one channel each
    _hand_set_head(model)
    a, b = torch.tensor([[1.0], [0.5], [2.0]]), torch.tensor([[1.0], [0.25], [0.0]])
    h_ab, inter = model.head_interaction(a, b)
    # h(a,b) = relu(a+b-1)·[1,-1]; h(0,b), h(a,0), h(0,0) are 0 except h(a,0) = relu(a-1) for a=2
    torch.testing.assert_close(h_ab, torch.tensor([[1.0, -1.0], [0.0, 0.0], [1.0, -1.0]]))
    torch.testing.assert_close(inter, torch.tensor([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]))


def test_interaction_nonzero_with_mlp_head() -> None:
    for seed in range(3):
        inter = _tiny("mlp", seed=seed).interaction(torch.rand(4, 3, 32, 32))
        assert inter.abs().max() > 1e-3


def test_interaction_vanishes_with_linear_head_the_reference_bug() -> None:
    model = _tiny("linear")
    x = torch.rand(4, 3, 32, 32)
    out = model.forward_all(x)
    assert out["det"].abs().max() > 1e-3  # the head itself is not trivial
    torch.testing.assert_close(out["interaction"], torch.zeros(4, 2), rtol=0, atol=1e-6)
    # ... so the reference's interaction loss has no gradient anywhere
    model.interaction_gap(out["interaction"], torch.tensor([0, 1, 1, 0])).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and max(g.abs().max().item() for g in grads) < 1e-6


def test_loss_terms_by_hand() -> None:
    model = _tiny(bound="none")
    out = {
        "det": torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]]),
        "source": torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]),
        "target": torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0, 0.0]]),
        "interaction": torch.tensor([[1.0, -1.0], [0.5, 2.0]]),
    }
    det, source, target = torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2, 0])
    total, terms = model.loss_from_outputs(out, det, source, target, lam=10.0)
    expected = {
        "det": (math.log(2) + math.log(4 / 3)) / 2,  # p = 1/2, then 3/4
        "source": (math.log(4 / 3) + math.log(2)) / 2,  # p = 3/4, then 1/2
        "target": (math.log(4) + math.log(5 / 2)) / 2,  # p = 1/4, then 2/5
        "interaction": ((1.0 - -1.0) + (2.0 - 0.5)) / 2,  # I[y] - I[1-y] per sample
    }
    for k, v in expected.items():
        assert terms[k].item() == pytest.approx(v, rel=1e-6), k
    assert total.item() == pytest.approx(
        expected["det"]
        + 0.5 * expected["source"]
        + 1.0 * expected["target"]
        - 10.0 * expected["interaction"],
        rel=1e-6,
    )
    bounded = _tiny(bound="tanh").loss_from_outputs(out, det, source, target, lam=10.0)[1]["interaction"]
    assert bounded.item() == pytest.approx((math.tanh(2.0) + math.tanh(1.5)) / 2, rel=1e-6)


def test_loss_matches_forward_all_and_reaches_every_parameter() -> None:
    model = _tiny().train()
    x = torch.rand(4, 3, 32, 32)
    det, source, target = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 2, 3]), torch.tensor([0, 4, 3, 3])
    total, terms = model.loss(x, det, source, target, lam=100.0)
    out = model.forward_all(x)
    assert terms["det"].item() == pytest.approx(F.cross_entropy(out["det"], det).item(), rel=1e-5)
    assert terms["target"].item() == pytest.approx(F.cross_entropy(out["target"], target).item(), rel=1e-5)
    assert all(not t.requires_grad for t in terms.values())
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_unbounded_interaction_scales_with_the_head() -> None:
    # I is linear in h's last layer (biases cancel): the reference form can be gamed by scaling.
    model = _tiny(bound="none")
    x = torch.rand(3, 3, 32, 32)
    inter = model.interaction(x)
    with torch.no_grad():
        model.det_head.fc2.weight.mul_(10.0)
        model.det_head.fc2.bias.mul_(10.0)
    torch.testing.assert_close(model.interaction(x), 10.0 * inter)


def test_bad_options_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="head must be one of"):
        create_model("fstmatching", num_identities=3, width=2, head="attention")
    with pytest.raises(UserError, match="interaction_bound"):
        create_model("fstmatching", num_identities=3, width=2, interaction_bound="clip")
    model = _tiny("linear", bound="none")
    save_model(model, tmp_path / "fst.safetensors")
    loaded = load_model(tmp_path / "fst.safetensors")
    assert (
        isinstance(loaded, FSTMatching)
        and loaded.det_head.kind == "linear"
        and loaded.interaction_bound == "none"
    )
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_pretrained_initialises_both_encoders(tmp_path: Path) -> None:
    torch.manual_seed(1)
    backbone = create_model("resnet18", num_classes=1000, width=2)
    path = tmp_path / "backbone.safetensors"
    save_file(backbone.state_dict(), str(path))
    model = create_model("fstmatching", num_identities=3, width=2, pretrained=str(path))
    for enc in (model.source_encoder, model.target_encoder):
        assert torch.equal(enc.layer3[1].conv2.weight, backbone.layer3[1].conv2.weight)
