import pytest
import torch

from fstmatch.config import load_config, preset_names
from fstmatch.errors import UserError
from fstmatch.train import TrainConfig
from fstmatch.train.loop import lr_factor
from fstmatch.train.sampler import EpochBatchSampler, balance_weights, class_weights


def test_presets_load_and_are_strict():
    assert {"default", "reference", "cpu-small", "demo-tiny"} <= set(preset_names("train"))
    ref = load_config(TrainConfig, kind="train", preset="reference")
    assert (ref.optim.lr, ref.optim.weight_decay, ref.batch_size, ref.epochs) == (1e-5, 4e-3, 128, 200)
    assert ref.model.pretrained == "imagenet"
    with pytest.raises(UserError, match="unknown config key"):
        load_config(TrainConfig, kind="train", preset="default", overrides=["optim.lrr=1"])
    with pytest.raises(UserError, match="amp must be one of"):
        load_config(TrainConfig, overrides=["amp=fp8"])


def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_by_skipping():
    s = EpochBatchSampler(50, 4, seed=3)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == len(s) == 12
    s.set_epoch(2, start_batch=5)
    assert list(s) == full[5:]
    s.set_epoch(3)
    assert list(s) != full  # a new order every epoch
    again = EpochBatchSampler(50, 4, seed=3)
    again.set_epoch(2)
    assert list(again) == full


def test_sampler_shards_disjointly_across_ranks():
    ranks = [EpochBatchSampler(40, 5, seed=0, rank=r, world_size=2) for r in range(2)]
    seen = [[i for batch in s for i, _ in batch] for s in ranks]
    assert len(seen[0]) == len(seen[1]) == 20
    assert not set(seen[0]) & set(seen[1])
    with pytest.raises(ValueError, match="cannot fill one batch"):
        EpochBatchSampler(7, 4, world_size=2)


def test_balanced_sampling_draws_both_classes_equally():
    labels = [0] * 100 + [1] * 500  # FF++-like: 5 fakes per real
    s = EpochBatchSampler(len(labels), 50, seed=0, weights=balance_weights(labels))
    drawn = [labels[i] for batch in s for i, _ in batch]
    assert 0.45 < sum(drawn) / len(drawn) < 0.55
    w = class_weights(labels)
    assert torch.allclose(w, torch.tensor([3.0, 0.6]))  # n / (2 * count)


def test_lr_schedule_warmup_cosine_step():
    cfg = load_config(TrainConfig, overrides=["optim.warmup_steps=10", "optim.schedule=cosine"])
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(10, 100, cfg) == pytest.approx(1.0)
    assert lr_factor(100, 100, cfg) == pytest.approx(0.0, abs=1e-9)
    cfg = load_config(TrainConfig, overrides=["optim.schedule=step", "optim.step_every=5", "optim.step_gamma=0.5"])
    assert [lr_factor(s, 100, cfg) for s in (0, 5, 12)] == [1.0, 0.5, 0.25]
