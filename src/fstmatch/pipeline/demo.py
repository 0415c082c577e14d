"""``run_demo(out, preset)``: the whole study on FST-Synth in one call, resumable stage by stage.

Stages, in order (each skipped when its output is complete and was made with the same settings):

1. ``synth``    generate FST-Synth (a synthetic FF++: videos, splits, ground truth)
2. ``prepare``  face crops + manifest
3. ``train:*``  seven runs. Analysed models, trained on **raw** training frames with the analysed
                frames held out (docs/method.md §5): ``source``, ``target``, ``det`` (H1, H3),
                ``det_paired`` and ``det_unpaired`` (H2). Detection comparison, trained alike on the
                training frames of **all three** compressions: ``det_all`` and ``fstmatching``.
4. ``verify``   H1–H3 and the ground-truth scores (:func:`fstmatch.hypotheses.verify.verify`)
5. ``test``     ``det_all``, ``fstmatching`` (and the raw-trained ``det``, for context) on the test
                split at raw, c23 and c40
6. ``report``   ``summary.json``, ``report.md``, ``report.html``

With ``seeds`` (a *study*, ``fstmatch demo --seeds 0 1 2``) stages 1–2 run once and stages 3–6 once
per training seed, into ``DIR/seed-<k>/`` (each with its own ``summary.json``, report, explorer and
``demo_state.json``); the top ``DIR/summary.json`` and report judge every claim across the seeds
(:mod:`fstmatch.pipeline.study`, statistics :mod:`fstmatch.hypotheses.study`). Seeds run
concurrently, ``jobs`` at a time, each in a process of its own with one torch thread, its log in
``DIR/seed-<k>/demo.log``; they share no mutable state (each writes only under its own folder).
With ``data_per_seed`` every seed also makes its own FST-Synth data (synth seed = the seed) in
``DIR/seed-<k>/data`` and ``prep``, so the between-seed spread includes the data's.

In ``summary["detection"]`` the key ``det`` is the all-compression detector ``det_all`` (the one
trained alike with FST-Matching, as the comparison requires); the raw-trained detector analysed in
H1/H3 is listed as ``det_raw``. ``summary["runs"]`` maps every key to its run directory.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fstmatch.config import from_dict, load_config, merge, to_dict
from fstmatch.errors import UserError
from fstmatch.explain.mapfile import FORMAT_VERSION as MAP_FORMAT
from fstmatch.hypotheses.protocol import DETECTION, RUNS, train_config, train_run
from fstmatch.utils.io import atomic_write_json
from fstmatch.utils.procs import die_with_parent

#: The preset ``make demo`` and ``fstmatch demo`` run.
DEFAULT_PRESET = "laptop"


@dataclass
class SynthStage:
    preset: str = "tiny"  # fstmatch/presets/synth/<preset>.yaml
    workers: int = 2


@dataclass
class PrepareStage:
    frames_per_video: int = 8
    workers: int = 2
    options: dict[str, Any] = field(default_factory=dict)  # more keyword arguments of fstmatch.data.prepare


@dataclass
class DemoConfig:
    seed: int = 0  # FST-Synth's seed, and the training seed unless train.seed is set
    #: Training seeds of a multi-seed study (null: one run). The data (FST-Synth with ``seed``) is
    #: made once; every model is trained once per seed.
    seeds: tuple[int, ...] | None = None
    #: Processes side by side, each with one torch thread (0: one per CPU core): a study's seeds, or
    #: the seven trainings of a single run.
    jobs: int = 0
    #: Each seed of a study makes its own FST-Synth data (synth seed = the seed): the between-seed
    #: spread then includes the data's. Off: the data is made once and only the training varies.
    data_per_seed: bool = False
    synth: SynthStage = field(default_factory=SynthStage)
    prepare: PrepareStage = field(default_factory=PrepareStage)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig keys shared by every run
    runs: dict[str, Any] = field(default_factory=dict)  # per-run TrainConfig overrides, by run name
    verify: dict[str, Any] = field(default_factory=dict)  # VerifyConfig keys (manifest/checkpoints are filled in)
    test_batch_size: int = 128
    #: torch CPU threads of a single run's stages that run in this process (verify, test; null:
    #: torch's default, one per core). Processes side by side (a study's seeds, a single run's
    #: trainings) always use one thread each: more would oversubscribe the cores.
    threads: int | None = None


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Runs named stages once: ``DIR/demo_state.json`` records each finished stage with the
    fingerprint of its settings and its wall time; a rerun skips a stage whose fingerprint matches
    and whose outputs still exist."""

    def __init__(self, out: Path, total: int, label: str = "demo") -> None:
        self.out, self.total, self.count, self.label = out, total, 0, label
        self.path = out / "demo_state.json"
        self.state: dict[str, Any] = json.loads(self.path.read_text("utf-8")) if self.path.is_file() else {}

    def run(self, name: str, settings: Any, outputs: list[Path], fn: Callable[[], Any]) -> float:
        self.count += 1
        fp = _fingerprint(settings)
        if self._done(name, fp, outputs):
            done = self.state[name]
            print(f"[{self.label} {self.count}/{self.total}] {name}: done earlier ({done['seconds']:.0f} s), "
                  "skipped", flush=True)
            return float(done["seconds"])
        print(f"[{self.label} {self.count}/{self.total}] {name} ...", flush=True)
        t0 = time.perf_counter()
        fn()
        seconds = round(time.perf_counter() - t0, 1)
        self.state[name] = {"fingerprint": fp, "seconds": seconds}
        atomic_write_json(self.path, self.state)
        print(f"[{self.label} {self.count}/{self.total}] {name}: {seconds:.0f} s", flush=True)
        return seconds

    def _done(self, name: str, fingerprint: str, outputs: list[Path]) -> bool:
        """Whether stage ``name`` finished with these settings and its outputs still exist."""
        return self.state.get(name, {}).get("fingerprint") == fingerprint and all(p.exists() for p in outputs)

    def run_many(self, jobs: list[tuple[str, Any, list[Path], Callable[[], Any]]], workers: int,
                 cost: Callable[[str], float] | None = None) -> None:
        """Run independent stages ``(name, settings, outputs, fn)``, ``workers`` at a time in worker
        processes (one torch thread each; ``fn`` must be picklable), the costliest first by ``cost``;
        only this process writes the state, as each stage finishes, and the state lists them in the
        order given whatever order they finish in. ``workers <= 1``: one after the other, here."""
        if workers <= 1:
            for name, settings, outputs, fn in jobs:
                self.run(name, settings, outputs, fn)
            return
        import concurrent.futures as cf
        import multiprocessing as mp

        todo = []
        for name, settings, outputs, fn in jobs:
            fp = _fingerprint(settings)
            if self._done(name, fp, outputs):
                self.run(name, settings, outputs, fn)  # prints "done earlier"; skips
            else:
                todo.append((name, fp, fn))
        if not todo:
            return
        if cost is not None:
            todo.sort(key=lambda job: -cost(job[0]))
        with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                    initializer=die_with_parent) as pool:
            futures = {}
            for name, fp, fn in todo:
                self.count += 1
                print(f"[{self.label} {self.count}/{self.total}] {name}: queued ({workers} at a time, each in a "
                      "process of its own)", flush=True)
                futures[pool.submit(_timed, fn)] = (name, fp)
            for fut in cf.as_completed(futures):
                name, fp = futures[fut]
                seconds = fut.result()
                self.state[name] = {"fingerprint": fp, "seconds": seconds}
                atomic_write_json(self.path, self.state)
                print(f"[{self.label}] {name}: {seconds:.0f} s", flush=True)
        names = [job[0] for job in jobs]
        self.state = {**{k: v for k, v in self.state.items() if k not in names},
                      **{k: self.state[k] for k in names}}
        atomic_write_json(self.path, self.state)

    def seconds(self, prefix: str = "") -> dict[str, float]:
        """Wall time of every recorded stage whose name starts with ``prefix`` (prefix removed)."""
        return {k[len(prefix):]: float(v["seconds"]) for k, v in self.state.items() if k.startswith(prefix)}


def _timed(fn: Callable[[], Any]) -> float:
    """Run ``fn`` in a worker process with one torch thread; its wall time in seconds."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 1)


def _train_one_thread(tc: Any, run: Path, logged: bool) -> None:
    """``train_run`` on one torch thread, so the weights do not depend on how many trainings ran
    side by side; ``logged``: everything it prints goes to ``RUN/train.log`` (runs side by side)."""
    import contextlib

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run.mkdir(parents=True, exist_ok=True)
    try:
        if not logged:
            train_run(tc, run)
            return
        with open(run / "train.log", "a", encoding="utf-8", buffering=1) as log, \
                contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            train_run(tc, run)
    finally:
        torch.set_num_threads(threads)


def demo_train_config(cfg: DemoConfig, name: str, manifest: Path, seed: int | None = None) -> Any:
    """The TrainConfig of demo run ``name``: ``cfg.train`` < protocol < ``cfg.runs[name]``. The
    training seed is ``seed`` when given (a study's seed), else ``train.seed``, else ``cfg.seed``;
    it changes the training alone (the data stays the same)."""
    holdout = cfg.verify.get("images", {}).get("holdout", 1)
    if seed is None:
        seed = cfg.train.get("seed", cfg.seed)
    return train_config(name, manifest, cfg.train, holdout, cfg.runs.get(name), seed=seed)


def demo_verify_config(cfg: DemoConfig, det: Any, manifest: Path, checkpoints: dict[str, str]) -> Any:
    """The VerifyConfig of a demo run: ``cfg.verify`` over the faces the models were trained on (the
    whole :class:`~fstmatch.data.geometry.Geometry` of ``det``'s TrainConfig, convention included)."""
    from fstmatch.hypotheses.config import VerifyConfig

    vdata = merge({"images": det.input.geometry().to_dict()}, cfg.verify)
    return from_dict(VerifyConfig, merge(vdata, {"manifest": str(manifest), "checkpoints": checkpoints,
                                                 "threads": cfg.threads}))


def _test(run: Path, rows: list[dict], root: Path, batch_size: int, out: Path) -> None:
    from fstmatch.models import load_model
    from fstmatch.train import evaluate, load_run_config

    tc = load_run_config(run)
    model = load_model(run).eval()
    res = evaluate(model, rows, root, geometry=tc.input.geometry(), batch_size=batch_size, amp=tc.amp, progress=True)
    atomic_write_json(out, res)


def _check_seeds(cfg: DemoConfig) -> tuple[int, ...] | None:
    if cfg.seeds is None:
        return None
    seeds = tuple(cfg.seeds)
    negative = [k for k in seeds if k < 0]
    if negative:
        raise UserError(f"seeds must be >= 0 (they name folders seed-<k> and seed numpy/torch), got {negative}")
    if cfg.jobs < 0:
        raise UserError(f"jobs must be >= 0 (0: one per CPU core), got {cfg.jobs}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds: a study needs at least two distinct training seeds, got {list(seeds)} "
                        "(for one run with another training seed use --set train.seed=K)")
    if "seed" in cfg.train:
        raise UserError("train.seed and seeds are both set: the study's seeds are the training seeds")
    return seeds


def _run_seed(stages: Stages, cfg: DemoConfig, where: Path, seed: int | None, manifest: Path,
              prep_settings: dict[str, Any], train_jobs: int = 1) -> dict[str, Any]:
    """Stages 3-5 for one training seed into ``where``; returns the TrainConfigs by run name. The
    seven trainings run ``train_jobs`` at a time (each with one torch thread)."""
    import functools

    from fstmatch.data import read_manifest
    from fstmatch.hypotheses.verify import verify

    runs = where / "runs"
    train_cfgs = {name: demo_train_config(cfg, name, manifest, seed) for name in RUNS}

    def cost(stage: str) -> float:  # epochs x frames per epoch (the all-compression runs see 3x)
        tc = train_cfgs[stage.split(":", 1)[1]]
        return tc.epochs * (3 if tc.data.compressions is None else 1)

    stages.run_many([(f"train:{name}", {"data": prep_settings, "train": to_dict(tc)},
                      [runs / name / "model.safetensors"],
                      functools.partial(_train_one_thread, tc, runs / name, train_jobs > 1))
                     for name, tc in train_cfgs.items()], train_jobs, cost)

    checkpoints = {role: str(runs / role) for role in ("source", "target", "det", "det_paired", "det_unpaired")}
    checkpoints["fstmatching"] = str(runs / "fstmatching")
    vcfg = demo_verify_config(cfg, train_cfgs["det"], manifest, checkpoints)
    vsettings = {"data": prep_settings, "train": {k: to_dict(v) for k, v in train_cfgs.items()}, "verify": to_dict(vcfg),
                 "map_format": MAP_FORMAT}  # a verify of an older map format is redone (the explorer reads the maps)
    stages.run("verify", vsettings, [where / "verify" / "summary.json"], lambda: verify(vcfg, where / "verify"))

    test_rows = [r for r in read_manifest(manifest) if r["split"] == "test"]
    if not test_rows:
        raise UserError(f"{manifest} has no test rows: the synth preset must make a test split")
    for key, name in DETECTION.items():
        settings = {"train": to_dict(train_cfgs[name]), "data": prep_settings}
        stages.run(f"test:{key}", settings, [where / "test" / f"{key}.json"],
                   lambda name=name, key=key: _test(runs / name, test_rows, manifest.parent, cfg.test_batch_size,
                                                    where / "test" / f"{key}.json"))
    return train_cfgs


def _data(stages: Stages, cfg: DemoConfig, where: Path, seed: int) -> tuple[Path, dict[str, Any]]:
    """Stages 1-2 (FST-Synth with ``seed``, then face crops) into ``where/data`` and ``where/prep``;
    returns the manifest and the settings that fingerprint the data."""
    from fstmatch.data import prepare
    from fstmatch.synth import generate
    from fstmatch.synth.codec import ENCODER

    data, prep = where / "data", where / "prep"
    synth_settings = {**to_dict(cfg.synth), "seed": seed, "encoder": ENCODER}
    stages.run("synth", synth_settings, [data / "splits"],
               lambda: generate(data, preset=cfg.synth.preset, seed=seed, workers=cfg.synth.workers,
                                progress=True))
    prep_settings = {"synth": synth_settings, **to_dict(cfg.prepare)}
    stages.run("prepare", prep_settings, [prep / "manifest.jsonl"],
               lambda: prepare(data, prep, frames_per_video=cfg.prepare.frames_per_video,
                               workers=cfg.prepare.workers, **cfg.prepare.options))
    return prep / "manifest.jsonl", prep_settings


def _one_run(cfg: DemoConfig, preset: str, where: Path, seed: int | None, data: tuple[Path, dict[str, Any]] | None,
             data_seconds: dict[str, float], label: str, train_jobs: int = 1) -> dict[str, Any]:
    """One training seed, stages 3-6 (and 1-2 when ``data`` is None), into ``where``: its own
    ``demo_state.json``, ``summary.json``, report and explorer; its trainings ``train_jobs`` at a
    time. Returns the summary."""
    from fstmatch.browse import write_explorer
    from fstmatch.pipeline.summary import build_summary
    from fstmatch.report.demo import write_demo_report

    t0 = time.perf_counter()
    where.mkdir(parents=True, exist_ok=True)
    per_seed = len(RUNS) + 1 + len(DETECTION)
    stages = Stages(where, total=per_seed + (2 if data is None else 0), label=label)
    if data is None:
        data = _data(stages, cfg, where, cfg.seed if seed is None else seed)
    manifest, prep_settings = data
    train_cfgs = _run_seed(stages, cfg, where, seed, manifest, prep_settings, train_jobs)
    summary = build_summary(where, manifest, cfg, preset, train_cfgs, {**data_seconds, **stages.seconds()},
                            time.perf_counter() - t0, seed=seed)
    atomic_write_json(where / "summary.json", summary)
    md, page = write_demo_report(where, summary)
    write_explorer(where)  # the map explorer (fstmatch browse): DIR/explorer/index.html
    print(f"[{label}] wrote {where / 'summary.json'}, {md}, {page}", flush=True)
    return summary


def _seed_job(job: tuple[dict[str, Any], str, str, int, tuple[str, dict[str, Any]] | None, dict[str, float]]
              ) -> dict[str, Any]:
    """One seed of a study in a worker process: one torch thread, everything it prints in its log."""
    import contextlib

    import torch

    from fstmatch.config import from_dict as _from_dict

    cfg_dict, preset, out, seed, data, data_seconds = job
    cfg = _from_dict(DemoConfig, {**cfg_dict, "threads": 1})  # seeds side by side: one thread each
    torch.set_num_threads(1)
    where = Path(out) / f"seed-{seed}"
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "demo.log", "a", encoding="utf-8", buffering=1) as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        shared = None if data is None else (Path(data[0]), data[1])
        return _one_run(cfg, preset, where, seed, shared, data_seconds, label=f"seed-{seed}")


def _jobs(cfg: DemoConfig, tasks: int) -> int:
    """Processes to run ``tasks`` independent tasks with: ``cfg.jobs``, or one per CPU core."""
    from fstmatch.pipeline.summary import usable_cpus

    return max(1, min(cfg.jobs or usable_cpus(), tasks))


def _run_study(cfg: DemoConfig, preset: str, out: Path, seeds: tuple[int, ...],
               data: tuple[Path, dict[str, Any]] | None, data_seconds: dict[str, float]) -> dict[int, dict[str, Any]]:
    """Every seed, ``jobs`` at a time in worker processes (in this process when one at a time), with
    a progress bar whose ETA counts finished seeds."""
    import concurrent.futures as cf
    import multiprocessing as mp

    from tqdm import tqdm

    jobs = _jobs(cfg, len(seeds))
    shared = None if data is None else (str(data[0]), data[1])
    payload = [(to_dict(cfg), preset, str(out), k, shared, data_seconds) for k in seeds]
    summaries: dict[int, dict[str, Any]] = {}
    print(f"[study] {len(seeds)} seeds, {jobs} at a time (one torch thread each); "
          f"logs in {out}/seed-<k>/demo.log", flush=True)
    with tqdm(total=len(seeds), desc="study seeds", unit="seed") as bar:
        if jobs == 1:
            for job in payload:
                summaries[job[3]] = _one_run(cfg, preset, out / f"seed-{job[3]}", job[3],
                                             None if data is None else data, data_seconds, label=f"seed-{job[3]}")
                bar.update()
        else:
            with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=die_with_parent) as pool:
                futures = {pool.submit(_seed_job, job): job[3] for job in payload}
                for fut in cf.as_completed(futures):
                    summaries[futures[fut]] = fut.result()
                    bar.update()
                    bar.write(f"[study] seed-{futures[fut]} done")
    return {k: summaries[k] for k in seeds}


def run_demo(out_dir: str | Path, preset: str = DEFAULT_PRESET, overrides: list[str] | None = None,
             config_file: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the demo into ``out_dir``; returns the summary also written to ``summary.json``
    (with ``seeds`` set: the study's summary, with the ``aggregate`` over seeds)."""
    import torch

    cfg = load_config(DemoConfig, kind="demo", preset=preset, file=config_file, overrides=overrides or [])
    seeds = _check_seeds(cfg)
    unknown = sorted(set(cfg.runs) - set(RUNS))
    if unknown:
        raise UserError(f"runs: unknown run name(s) {', '.join(unknown)}; the demo's runs are {', '.join(RUNS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()

    if seeds is None:  # one run, into DIR: the trainings side by side on the cores, the rest here
        return _one_run(cfg, preset, out, None, None, {}, label="demo", train_jobs=_jobs(cfg, 7))

    # a study: the shared data once (unless per seed), then every seed, then the aggregate
    from fstmatch.pipeline.study import build_study_summary
    from fstmatch.report.study import write_study_report

    stages = Stages(out, total=0 if cfg.data_per_seed else 2, label="study")
    data = None if cfg.data_per_seed else _data(stages, cfg, out, cfg.seed)
    summaries = _run_study(cfg, preset, out, seeds, data, stages.seconds())
    seconds = {**stages.seconds(), **{f"seed-{k}/{name}": v for k, s in summaries.items()
                                      for name, v in s["seconds"].items() if name != "total"
                                      and (cfg.data_per_seed or name not in ("synth", "prepare"))}}
    summary = build_study_summary(cfg, preset, summaries, seconds, time.perf_counter() - start)
    atomic_write_json(out / "summary.json", summary)
    md, page = write_study_report(out, summary)
    print(f"[demo] wrote {out / 'summary.json'}, {md}, {page} (per seed: {out}/seed-*/report.html)", flush=True)
    return summary
