"""The training loop: ``train(cfg, out_dir)``. Read it top to bottom.

Run directory (docs/INTERFACES.md): ``model.safetensors`` (last weights, self-describing),
``state.pt`` (everything needed to resume: model, optimizer, scheduler, step, RNG states, config),
``config.yaml``, ``log.jsonl``, ``tb/``. Under torchrun every rank trains on its shard of each
epoch and only rank 0 writes. The data order of an epoch is a function of (seed, epoch) and every
sample carries its own augmentation seed, so the position in the run is just ``step`` and a
resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from fstmatch.config import from_dict, to_dict
from fstmatch.errors import UserError
from fstmatch.train.config import TrainConfig
from fstmatch.train.data import build_train_data, num_identities
from fstmatch.train.evaluate import evaluate
from fstmatch.train.sampler import EpochBatchSampler, class_weights
from fstmatch.utils import dist as fdist
from fstmatch.utils.io import append_jsonl, atomic_path, atomic_write_text


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class Objective(nn.Module):
    """Model + loss in one module, so DDP sees every parameter used by the loss (FST-Matching's
    ``loss`` calls several sub-networks). ``forward`` returns (loss, {term name: value})."""

    def __init__(self, model: nn.Module, role: str, cfg: TrainConfig, det_weight: Tensor | None = None) -> None:
        super().__init__()
        self.model, self.role, self.mcfg = model, role, cfg.model
        self.register_buffer("det_weight", det_weight if det_weight is not None else torch.ones(2), persistent=False)
        self.weighted = det_weight is not None

    def forward(self, images: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        w = self.det_weight if self.weighted else None
        if self.role == "fstmatching":
            m = self.mcfg
            out = self.model.forward_all(images)
            out = {k: v.float() for k, v in out.items()}
            loss, terms = self.model.loss_from_outputs(
                out, batch["label"], batch["source"], batch["target"],
                lam=m.interaction_weight, source_weight=m.source_weight, target_weight=m.target_weight,
            )
            if w is not None:  # class-weighted detection term
                weighted = F.cross_entropy(out["det"], batch["label"], weight=w)
                loss = loss - F.cross_entropy(out["det"], batch["label"]) + weighted
                terms["det"] = weighted.detach()
            return loss, terms
        logits = self.model(images)
        target = batch["label"] if self.role == "det" else batch[self.role]
        loss = F.cross_entropy(logits.float(), target, weight=w)
        return loss, {self.role: loss.detach()}


def build_model(cfg: TrainConfig, n_ids: int) -> nn.Module:
    """``fstmatch.models.create_model`` for the configured role."""
    from fstmatch.models import create_model

    m = cfg.model
    kw: dict[str, Any] = {"arch": m.arch, "width": m.width, **m.extra}
    if m.pretrained:
        kw["pretrained"] = m.pretrained
    if m.role != "det":
        kw["num_identities"] = n_ids
    return create_model(m.role, **kw)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warmup, then the schedule)."""
    o = cfg.optim
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "step":
        every = o.step_every or max(1, total // 3)
        return o.step_gamma ** ((step - o.warmup_steps) // every)
    t = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def rng_state() -> dict[str, Any]:
    """Global RNG states as plain tensors/lists (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, key, *rest = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume(run: Path, cfg: TrainConfig, force: bool) -> dict[str, Any]:
    """Load ``state.pt``; a config different from the one the run started with needs ``force``."""
    path = run / "state.pt"
    if not path.is_file():
        raise UserError(f"cannot resume: {path} does not exist (start the run without --resume)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    old = state["config"]
    new = to_dict(cfg)
    if old != new and not force:
        changed = sorted(_diff(old, new))
        raise UserError(f"--resume with a changed config ({', '.join(changed)}); pass --force to resume anyway")
    return state


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


def save_checkpoint(run: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, step: int,
                    epoch: int, cfg: TrainConfig, extra: dict[str, Any]) -> None:
    """Weights first, then ``state.pt`` (the commit point of a checkpoint), both atomic."""
    from fstmatch.models import save_model

    save_model(model, run / "model.safetensors", extra_meta={"role": cfg.model.role, "step": step})
    state = {
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": step,
        "epoch": epoch,
        "rng": rng_state(),
        "config": to_dict(cfg),
        **extra,
    }
    with atomic_path(run / "state.pt") as tmp:
        torch.save(state, tmp)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    force: bool = False,
    *,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> Path:
    """Train the configured model into ``out_dir``; returns the path of ``model.safetensors``.

    ``resume`` continues from ``state.pt``; ``force`` allows resuming with a changed config or
    overwriting an existing run. ``stop_at_step`` stops early after that step, with a checkpoint
    (an interruption on purpose: used by tests and time-boxed jobs).
    """
    run = Path(out_dir)
    info = fdist.init_distributed(cfg.device)
    main = info.is_main
    if cfg.amp == "fp16" and info.device.type != "cuda":
        raise UserError("amp=fp16 needs a CUDA device; use amp=bf16 on CPU")
    if run.joinpath("state.pt").exists() and not resume and not force:
        raise UserError(f"{run} already holds a training run; pass --resume to continue it or --force to restart")
    state = check_resume(run, cfg, force) if resume else None

    # ---- data -------------------------------------------------------------------------------
    data = build_train_data(cfg)
    n_ids = num_identities(data.all_rows)
    det_weight = None
    if cfg.model.role in ("det", "fstmatching") and cfg.data.balance == "loss":
        det_weight = class_weights([r["label"] for r in data.train_rows])
    try:
        sampler = EpochBatchSampler(
            len(data.train_rows), cfg.batch_size, seed=cfg.seed, weights=data.sample_weights,
            rank=info.rank, world_size=info.world_size,
        )
    except ValueError as e:
        raise UserError(f"training set too small: {e}; lower batch_size") from None
    # Persistent workers keep their cache of aligned faces (cfg.cache_mb) from epoch to epoch; the
    # loader's own generator keeps the global RNG's stream the same whether or not a run resumed.
    loader = torch.utils.data.DataLoader(
        data.train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0, pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    steps_per_epoch = len(sampler)
    total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch

    # ---- model, optimizer, schedule ----------------------------------------------------------
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg, n_ids).to(info.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = Objective(model, cfg.model.role, cfg, det_weight).to(info.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                            weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg))
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        set_rng_state(state["rng"])
    net: nn.Module = objective
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(objective, device_ids=[info.device] if info.device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and info.device.type == "cuda")
    autocast = (torch.autocast(info.device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)
                if cfg.amp != "none" else contextlib.nullcontext())

    # ---- run directory (rank 0) --------------------------------------------------------------
    writer = None
    if main:
        run.mkdir(parents=True, exist_ok=True)
        if state is None:  # a fresh start (possibly --force over an old run): no stale logs
            run.joinpath("log.jsonl").unlink(missing_ok=True)
            shutil.rmtree(run / "tb", ignore_errors=True)
        atomic_write_text(run / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tb"), purge_step=step if state is not None else None)
        append_jsonl(run / "log.jsonl", {"event": "start" if state is None else "resume", "step": step,
                                         "total_steps": total, "steps_per_epoch": steps_per_epoch,
                                         "train_rows": len(data.train_rows), "val_rows": len(data.val_rows),
                                         "num_identities": n_ids, "world_size": info.world_size})

    def log(row: dict[str, Any]) -> None:
        if main:
            append_jsonl(run / "log.jsonl", row)
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    writer.add_scalar(k, v, row["step"])

    last_good = "none yet" if state is None else f"{run / 'state.pt'} (step {step})"
    extra = {"steps_per_epoch": steps_per_epoch, "total_steps": total}

    def checkpoint(epoch: int) -> None:
        nonlocal last_good
        if main:
            save_checkpoint(run, model, opt, sched, step, epoch, cfg, extra)
        last_good = f"{run / 'state.pt'} (step {step})"
        fdist.barrier()

    # ---- loop ---------------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, disable=not (main and progress), dynamic_ncols=True, unit="step")
    sums: dict[str, float] = {}
    n_sum, t0, seen = 0, time.perf_counter(), 0
    model.train()
    while step < total:
        epoch, start_batch = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        for batch in loader:
            images = batch["image"].to(info.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = {k: batch[k].to(info.device) for k in ("label", "source", "target")}
            with autocast:
                loss, terms = net(images, targets)
            stats = torch.stack([loss.detach().float(), *[t.float() for t in terms.values()]])
            if info.distributed:
                torch.distributed.all_reduce(stats)
                stats /= info.world_size
            if not torch.isfinite(stats[0]):
                bar.close()
                raise TrainingDiverged(
                    f"loss is {stats[0].item()} at step {step + 1} (epoch {epoch}); "
                    f"last good checkpoint: {last_good}. Lower optim.lr, enable optim.grad_clip or use amp=none."
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip:
                scaler.unscale_(opt)
                gnorm = nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            seen += images.shape[0] * info.world_size
            n_sum += 1
            for k, v in zip(["loss", *terms], stats.tolist()):
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            if step % cfg.log_every == 0 or step == total:
                dt = time.perf_counter() - t0
                row = {"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0], "img_per_s": seen / dt,
                       **{k: v / n_sum for k, v in sums.items()}}
                if cfg.optim.grad_clip:
                    row["grad_norm"] = float(gnorm)
                log(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['img_per_s']:.0f}")
                sums, n_sum, t0, seen = {}, 0, time.perf_counter(), 0
            epoch_end = step % steps_per_epoch == 0
            paused = time.perf_counter()  # validation and checkpoints do not count in img_per_s
            if epoch_end and cfg.eval_every and data.val_rows and (step // steps_per_epoch) % cfg.eval_every == 0:
                val = _validate(model, data, cfg, info.device, main)
                model.train()
                log({"step": step, "epoch": epoch, **{f"val_{k}": v for k, v in val.items()}})
                if main:
                    bar.write(f"epoch {epoch} step {step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in val.items()))
            finished = step in (total, stop_at_step)
            if finished or epoch_end or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                checkpoint(epoch)
            t0 += time.perf_counter() - paused
            if finished:
                break
        if step == stop_at_step:
            break
    bar.close()
    if main:
        append_jsonl(run / "log.jsonl", {"event": "stopped" if step < total else "done", "step": step})
        writer.close()
    fdist.barrier()
    return run / "model.safetensors"


def _validate(model: nn.Module, data: Any, cfg: TrainConfig, device: torch.device, main: bool) -> dict[str, float]:
    """Validation metrics (rank 0 computes, every rank waits): det AUC or identity accuracy."""
    out: dict[str, float] = {}
    if main:
        res = evaluate(model, data.val_rows, data.root, role=cfg.model.role, geometry=cfg.input.geometry(),
                       batch_size=cfg.eval_batch_size, device=device, amp=cfg.amp, progress=False,
                       dataset=data.val_set)
        o = res["overall"]
        for k in ("auc", "acc", "video_auc", "source_acc", "target_acc", "identity_acc"):
            if o.get(k) is not None:
                out[k] = float(o[k])
    fdist.barrier()
    return out


def load_run_config(run: str | Path) -> TrainConfig:
    """The resolved ``TrainConfig`` of a run directory (its ``config.yaml``)."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run} is not a training run directory (no config.yaml)")
    return from_dict(TrainConfig, yaml.safe_load(path.read_text("utf-8")))


__all__ = ["Objective", "TrainingDiverged", "load_run_config", "train"]
