"""Regression-family Shapley estimators: paired KernelSHAP, Leverage SHAP and unbiased KernelSHAP.

Shapley values are the solution of a weighted least-squares problem over coalitions (Lundberg &
Lee 2017; Charnes et al. 1988): with ``y(S) = v(S) - v(∅)``, ``z`` the indicator of S and the Shapley
kernel ``mu(S) ∝ 1 / (C(n, s) * s * (n - s))`` over the coalitions of size ``0 < s < n``,

    phi = argmin E_mu[(y(S) - z'phi)^2]  subject to  1'phi = v(all) - v(∅).

With ``A = E_mu[z z']`` and ``b = E_mu[z y]`` the solution is ``phi = A^-1 (b - 1 (1'A^-1 b - Δ) / 1'A^-1 1)``.
The estimators sample coalitions in complementary pairs (S and its complement, one shared size
draw), shared by all images (common random numbers), from a size distribution ``q``, and weight
each pair by ``mu / q``:

- ``kernel`` (paired KernelSHAP, Covert & Lee 2021): ``q`` = the kernel's own size distribution;
  ``A`` and ``b`` estimated from the same samples; the constraint holds exactly.
- ``leverage`` (Leverage SHAP, Musco & Witter 2024): sizes uniform on ``1..n-1`` (the leverage scores
  of the kernel regression are equal across sizes), importance-weighted; otherwise as ``kernel``.
  (With replacement here: the paper's without-replacement Bernoulli scheme is not used.)
- ``unbiased`` (unbiased KernelSHAP, Covert & Lee 2021): ``A`` is known in closed form,
  ``A = a I + c 11'`` with ``a = 1/2 - c``, which reduces the solution to
  ``phi_i = E_mu[(z_i - s/n) v(S)] / a + Δ/n``: a plain mean of per-pair terms, so unbiased, with an
  exact sample-variance standard error; it sums to Δ exactly.

Standard errors: ``unbiased`` from the per-pair terms' sample variance; ``kernel`` and ``leverage`` by
a delete-one-group jackknife over ``GROUPS`` interleaved groups of pairs (the estimate is a ratio,
so a plain variance does not apply). Memory: running sums only (``GROUPS`` copies of the n x n
matrix, shared by the images, and ``GROUPS x n`` numbers per image), whatever the budget.
Budget: ``budget`` orderings' worth of forwards, ``P * (n - 1)`` masked images plus the two
ends, so a comparison of estimators at equal ``budget`` is at equal forwards.
"""

from __future__ import annotations

import math

import torch

from fstmatch.explain._result import EstimatorExtras
from fstmatch.explain._utils import ValueFunction

REGRESSION_METHODS = ("kernel", "leverage", "unbiased")
#: interleaved groups of pairs for the jackknife standard error of ``kernel`` / ``leverage``
GROUPS = 16
#: pairs drawn from the generator at a time (results do not depend on how a budget is batched)
DRAW_CHUNK = 64


def kernel_size_weights(n: int) -> torch.Tensor:
    """(n + 1,) probability of each coalition size under the Shapley kernel: ∝ 1 / (s (n - s)) for
    0 < s < n, zero for the empty and the full coalition."""
    s = torch.arange(n + 1, dtype=torch.float64)
    w = torch.zeros(n + 1, dtype=torch.float64)
    w[1:n] = 1.0 / (s[1:n] * (n - s[1:n]))
    return w / w.sum()


def size_distribution(method: str, n: int) -> torch.Tensor:
    """(n + 1,) sampling probability of each size: the kernel's (``kernel``, ``unbiased``) or uniform
    on 1..n-1 (``leverage``)."""
    if method == "leverage":
        q = torch.zeros(n + 1, dtype=torch.float64)
        q[1:n] = 1.0 / (n - 1)
        return q
    return kernel_size_weights(n)


class PairSampler:
    """Complementary coalition pairs, drawn ``DRAW_CHUNK`` at a time from ``torch.Generator(seed)``.

    ``next(k)`` -> (coalitions (k, n) bool, sizes (k,), weights (k,) = mu(s) / q(s)): the first of
    each pair (its complement is ``~coalition``). The sequence depends on ``seed`` only.
    """

    def __init__(self, method: str, n: int, seed: int) -> None:
        self.n = n
        self.gen = torch.Generator().manual_seed(seed)
        self.q = size_distribution(method, n)
        mu = kernel_size_weights(n)
        self.weight = torch.where(self.q > 0, mu / self.q.clamp_min(1e-300), torch.zeros_like(mu))
        self._buf: list[torch.Tensor] = []
        self._sizes: list[torch.Tensor] = []

    def _draw(self) -> None:
        sizes = torch.multinomial(self.q, DRAW_CHUNK, replacement=True, generator=self.gen)
        keys = torch.rand(DRAW_CHUNK, self.n, generator=self.gen)
        rank = keys.argsort(dim=1).argsort(dim=1)  # a uniformly random ranking of the players per pair
        self._buf.extend(rank < sizes.view(-1, 1))
        self._sizes.extend(sizes)

    def next(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        while len(self._buf) < k:
            self._draw()
        z, s = torch.stack(self._buf[:k]), torch.stack(self._sizes[:k])
        del self._buf[:k], self._sizes[:k]
        return z, s, self.weight[s]


def evaluated_pairs(vf: ValueFunction, sampler: PairSampler, v_empty: torch.Tensor, active: torch.Tensor,
                    pairs: int, per_round: int):
    """Draw ``pairs`` pairs in rounds of ``per_round`` and evaluate them for the images ``active``:
    yields (z (k, n) bool, sizes (k,), weights (k,), y (A, 2k) = v - v(∅) of the coalitions, then
    of their complements)."""
    while pairs > 0 and active.numel():
        k = min(per_round, pairs)
        pairs -= k
        z, s, w = sampler.next(k)
        yield z, s, w, vf.evaluate(active, torch.cat([z, ~z])) - v_empty[active].view(-1, 1)


def unbiased_constants(n: int) -> tuple[float, float]:
    """``(a, c)`` of ``A = E_mu[z z'] = a I + c 11'`` under the Shapley kernel (``a = 1/2 - c``)."""
    p = kernel_size_weights(n)
    s = torch.arange(n + 1, dtype=torch.float64)
    c = float((p * s * (s - 1)).sum()) / (n * (n - 1)) if n > 1 else 0.0
    return 0.5 - c, c


class _RegressionSums:
    """Running sums of one regression estimator for N images (see the module docstring)."""

    def __init__(self, method: str, n_images: int, n: int) -> None:
        self.method, self.n = method, n
        self.k = torch.zeros(n_images, dtype=torch.long)
        if method == "unbiased":
            self.a, _ = unbiased_constants(n)
            self.s1 = torch.zeros(n_images, n, dtype=torch.float64)
            self.s2 = torch.zeros(n_images, n, dtype=torch.float64)
        else:
            self.A = torch.zeros(GROUPS, n, n, dtype=torch.float64)  # shared by the images (same coalitions)
            self.b = torch.zeros(n_images, GROUPS, n, dtype=torch.float64)
            self.cnt = torch.zeros(GROUPS, dtype=torch.float64)
        self.drawn = 0  # pairs added so far (for the group of the next pair)

    def add(self, images: torch.Tensor, z: torch.Tensor, w: torch.Tensor, y_in: torch.Tensor,
            y_out: torch.Tensor, shared: bool, group: torch.Tensor | None = None) -> None:
        """One batch of pairs: z (k, n) bool, w (k,), y_in / y_out (A, k) = y(S), y(complement).
        ``shared``: the batch's pairs also enter the matrix sums (once per batch, for all images).
        ``group`` (k,): the jackknife group of each pair (default: interleaved by draw order); pairs
        that are not independent of each other must share a group."""
        zf = z.double()
        k = z.shape[0]
        if self.method == "unbiased":
            centred = zf - zf.mean(dim=1, keepdim=True)  # z_i - s/n
            terms = (w.view(1, -1, 1) * centred.unsqueeze(0) * (y_in - y_out).unsqueeze(2)) / (2 * self.a)
            self.s1[images] += terms.sum(1)
            self.s2[images] += (terms**2).sum(1)
        else:
            if group is None:
                group = (self.drawn + torch.arange(k)) % GROUPS
            onehot = torch.nn.functional.one_hot(group, GROUPS).double()  # (k, G)
            zc = 1.0 - zf
            # pair-averaged b-terms: w (z y(S) + (1 - z) y(S^c)) / 2, summed per group
            bt = w.view(1, -1, 1) * (zf.unsqueeze(0) * y_in.unsqueeze(2) + zc.unsqueeze(0) * y_out.unsqueeze(2)) / 2
            self.b[images] += torch.einsum("akn,kg->agn", bt, onehot)
            if shared:
                wg = onehot * w.view(-1, 1) / 2
                self.A += torch.einsum("kg,ki,kj->gij", wg, zf, zf) + torch.einsum("kg,ki,kj->gij", wg, zc, zc)
                self.cnt += onehot.sum(0)
        self.k[images] += k

    def advance(self, k: int) -> None:
        self.drawn += k

    def estimate(self, images: torch.Tensor, gap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, stderr), each (A, n); gap (A,) = v(all) - v(∅)."""
        n = self.n
        if self.method == "unbiased":
            k = self.k[images].double().view(-1, 1)
            mean = self.s1[images] / k
            var = ((self.s2[images] - k * mean**2) / (k - 1).clamp_min(1)).clamp_min(0)
            se = torch.where(k >= 2, (var / k).sqrt(), torch.full_like(var, math.nan))
            return mean + gap.view(-1, 1) / n, se
        b = self.b[images]  # (A, G, n)
        full = _solve(self.A.sum(0) / self.cnt.sum(), b.sum(1) / self.cnt.sum(), gap)
        groups = int((self.cnt > 0).sum())
        if groups < 2:
            return full, torch.full_like(full, math.nan)
        reps = []
        for g in range(GROUPS):
            if self.cnt[g] == 0:
                continue
            c = self.cnt.sum() - self.cnt[g]
            reps.append(_solve((self.A.sum(0) - self.A[g]) / c, (b.sum(1) - b[:, g]) / c, gap))
        r = torch.stack(reps)  # (G', A, n) delete-one-group estimates
        var = (groups - 1) / groups * ((r - r.mean(0)) ** 2).sum(0)
        return full, var.sqrt()


def _solve(A: torch.Tensor, b: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Constrained least squares: A (n, n), b (A, n), gap (A,) -> phi (A, n) with 1'phi = gap.
    A tiny ridge keeps an under-sampled A (fewer pairs than players) solvable."""
    n = A.shape[0]
    ridge = 1e-9 * float(torch.diagonal(A).mean().clamp_min(1e-300))
    rhs = torch.cat([b.T, torch.ones(n, 1, dtype=A.dtype)], dim=1)  # (n, A + 1)
    L, info = torch.linalg.cholesky_ex(A + ridge * torch.eye(n, dtype=A.dtype))
    sol = torch.cholesky_solve(rhs, L) if int(info) == 0 else torch.linalg.pinv(A, hermitian=True) @ rhs
    ainv_b, ainv_1 = sol[:, :-1].T, sol[:, -1]  # (A, n), (n,)
    lam = (ainv_b.sum(1) - gap) / ainv_1.sum()
    return ainv_b - lam.view(-1, 1) * ainv_1.view(1, -1)


def pairs_for(n_perm: int, n: int) -> int:
    """Complementary pairs that cost as many forwards as ``n_perm`` orderings of the walk."""
    return max(2, (n_perm * (n - 1) + 1) // 2)


class RegressionRun:
    """One regression estimator as a resumable state for N images: ``run`` adds pairs for some of
    them (the same pairs for all, from one generator), ``estimate`` solves at any point. An image
    that stops while others go on is ``freeze``-d (its estimate is kept: the matrix sums, shared by
    all images, keep growing)."""

    def __init__(self, vf: ValueFunction, n_images: int, n: int, method: str, seed: int,
                 v_empty: torch.Tensor, v_full: torch.Tensor) -> None:
        self.vf, self.n = vf, n
        self.method = method
        self.sampler = PairSampler(method, n, seed)
        self.sums = _RegressionSums(method, n_images, n)
        self.v_empty, self.gap = v_empty, v_full - v_empty
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.per_round = max(2, (1 << 14) // n)

    def run(self, active: torch.Tensor, pairs: int) -> None:
        for z, _, w, v in evaluated_pairs(self.vf, self.sampler, self.v_empty, active, pairs, self.per_round):
            k = z.shape[0]
            self.sums.add(active, z, w, v[:, :k], v[:, k:], shared=True)
            self.sums.advance(k)

    def freeze(self, images: torch.Tensor) -> None:
        if images.numel():
            values, stderr = self.sums.estimate(images, self.gap[images])
            for j, i in enumerate(images.tolist()):
                self.frozen[i] = (values[j], stderr[j])

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, stderr = self.sums.estimate(images, self.gap[images])
        for j, i in enumerate(images.tolist()):
            if i in self.frozen:
                values[j], stderr[j] = self.frozen[i]
        return values, stderr

    def count(self, images: torch.Tensor) -> torch.Tensor:
        """(A,) pairs each image has had."""
        return self.sums.k[images]

    def used(self) -> torch.Tensor:
        """(N,) orderings' worth of forwards spent per image (rounded)."""
        return (2 * self.sums.k + (self.n - 2)) // (self.n - 1)

    def extras(self) -> EstimatorExtras:
        return EstimatorExtras()


def regression(vf: ValueFunction, n_images: int, n: int, method: str, n_perm: int, seed: int,
               max_stderr: float | None, round_orderings: int, run_class: type = RegressionRun):
    """A regression-family estimate: (values, stderr, n_used, v_full, v_empty, extras), ``n_used`` in
    orderings' worth of forwards (``2 * pairs / (n - 1)``). ``run_class(vf, n_images, n, method, seed,
    v_empty, v_full)`` is the run state (``_core.RUNS``: ``RegressionRun`` or ``_spline.SplineRun``)."""
    ends = vf.evaluate(torch.arange(n_images), torch.stack([torch.zeros(n, dtype=torch.bool),
                                                            torch.ones(n, dtype=torch.bool)]))
    v_empty, v_full = ends[:, 0], ends[:, 1]
    if n == 1:  # one player: efficiency alone gives its value
        gap = (v_full - v_empty).view(-1, 1)
        return gap, torch.zeros_like(gap), torch.zeros(n_images, dtype=torch.long), v_full, v_empty, EstimatorExtras()
    budget = pairs_for(n_perm, n)
    run = run_class(vf, n_images, n, method, seed, v_empty, v_full)
    if max_stderr is None:
        run.run(torch.arange(n_images), budget)
    else:
        per_round = max(2, round_orderings * (n - 1) // 2)
        active, drawn = torch.arange(n_images), 0
        while drawn < budget and active.numel():
            k = min(per_round, budget - drawn)
            run.run(active, k)
            drawn += k
            _, se = run.estimate(active)
            done = (se.amax(dim=1) < max_stderr) & (run.count(active) >= 2)
            run.freeze(active[done])
            active = active[~done]
    values, stderr = run.estimate(torch.arange(n_images))
    return values, stderr, run.used(), v_full, v_empty, run.extras()
