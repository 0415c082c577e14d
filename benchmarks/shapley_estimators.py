"""Offline comparison of Shapley estimators on recorded walks: forwards needed for equal error.

Input: walks recorded by ``benchmarks/shapley_gpu.py --walks N --walks-out W.npz`` (every step of
N antithetic orderings per image) and independent high-budget maps from the same script
(``--truth-seconds S --out T.npz``). Every estimator below is computed from disjoint blocks of B
recorded orderings (replicates); its error against the truth map is
``||phi_hat - phi_T||^2 - sum(stderr_T^2)`` (the truth's own variance removed), averaged over the
blocks. Forwards for equal error are compared through ``error^2 * forwards`` (budget-independent
for these estimators):

- **paper** (docs/method.md §3 reference): each cell's marginal at a uniformly random ordering costs two
  forwards; its per-sample variance is that of one recorded ordering's marginals (each recorded
  ordering is uniformly random), so ``C = 2 * G^2 * sum_cells var``;
- **antithetic mean**: the walk's previous estimate (mean of antithetic-pair means);
- **stratified**: the engine's estimate (``_StratumSums``: pair means post-stratified by folded
  position, efficiency restored), with its predicted ``sum(stderr^2)`` over the observed error^2.

Usage: .venv/bin/python benchmarks/shapley_estimators.py --walks W.npz --truth T.npz
"""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import torch

from fstmatch.explain._core import _restore_efficiency, _StratumSums


def marginals(w: np.lib.npyio.NpzFile, i: int, pos: torch.Tensor) -> torch.Tensor:
    wv = torch.from_numpy(w["wv"][i]).double()
    n = wv.shape[0]
    walk = torch.cat([torch.full((n, 1), float(w["v_empty"][i])), wv, torch.full((n, 1), float(w["v_full"][i]))], 1)
    return walk.diff(dim=1).gather(1, pos)  # (orderings, P) marginal of each cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--walks", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--budgets", default="16,32,64,128", help="orderings per estimate")
    ap.add_argument("--json")
    args = ap.parse_args()
    w, t = np.load(args.walks), np.load(args.truth)
    orders = torch.from_numpy(w["orders"].astype(np.int64))
    pos = orders.argsort(1)
    n_img, p = w["wv"].shape[0], orders.shape[1]
    report: dict = {}
    for b in [int(x) for x in args.budgets.split(",")]:
        rows = []
        for i in range(n_img):
            m = marginals(w, i, pos)
            gap = float(w["v_full"][i] - w["v_empty"][i])
            truth = torch.from_numpy(t["values"][i]).flatten().double()
            t_var = float((torch.from_numpy(t["stderr"][i]).double() ** 2).sum())
            norm2 = float((truth**2).sum()) - t_var
            c_paper = float(m[0::2].var(0).sum()) * 2 * p / norm2  # one ordering of each pair: independent
            e_anti, e_strat, predicted = [], [], []
            for r in range(m.shape[0] // b):
                mb, pb = m[r * b:(r + 1) * b], pos[r * b:(r + 1) * b]
                sums = _StratumSums(1, p, antithetic=True)
                sums.add(torch.tensor([0]), mb.view(-1, 2, p).mean(1).unsqueeze(0), pb[0::2])
                values, se = sums.estimate(torch.tensor([0]))
                values = _restore_efficiency(values, se, torch.tensor([gap]))[0]
                e_strat.append(float(((values - truth) ** 2).sum()) - t_var)
                e_anti.append(float(((mb.mean(0) - truth) ** 2).sum()) - t_var)
                predicted.append(float((se**2).sum()))
            fwd = b * (p - 1)
            c_anti, c_strat = float(np.mean(e_anti)) * fwd / norm2, float(np.mean(e_strat)) * fwd / norm2
            rows.append({"image": i, "replicates": len(e_strat), "paper_var_x_fwd": c_paper,
                         "fewer_forwards_antithetic": c_paper / c_anti, "fewer_forwards_stratified": c_paper / c_strat,
                         "stratified_rel_l2_error": float(max(np.mean(e_strat), 0) / norm2) ** 0.5,
                         "stratified_predicted_over_observed": float(np.mean(predicted) / np.mean(e_strat))})
        report[f"orderings_{b}"] = {
            "images": rows,
            "median_fewer_forwards_antithetic": statistics.median(r["fewer_forwards_antithetic"] for r in rows),
            "median_fewer_forwards_stratified": statistics.median(r["fewer_forwards_stratified"] for r in rows)}
        print(f"{b:4d} orderings: fewer forwards than the paper for equal error — antithetic mean "
              f"{[round(float(r['fewer_forwards_antithetic']), 2) for r in rows]}, stratified "
              f"{[round(float(r['fewer_forwards_stratified']), 2) for r in rows]} (medians "
              f"{report[f'orderings_{b}']['median_fewer_forwards_antithetic']:.2f} / "
              f"{report[f'orderings_{b}']['median_fewer_forwards_stratified']:.2f}); stderr predicted/observed "
              f"{[round(r['stratified_predicted_over_observed'], 2) for r in rows]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
