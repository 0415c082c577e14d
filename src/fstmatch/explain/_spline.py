"""Size-spline KernelSHAP (``estimator="spline"``): the Shapley kernel's least-squares fit of cell
effects that change with the coalition size, and the exact Shapley values of that fit.

Proxy model, with ``y(S) = v(S) - v(∅)``, ``z`` the indicator of S, ``s = |S|`` and ``B_l`` the
hat functions of ``L`` equally spaced knots on [0, 1] (piecewise linear, they sum to 1)::

    g(S) = sum_l B_l(s / n) * (gamma_l + sum_j beta_jl z_j),   g(∅) = 0,  g(all) = v(all) - v(∅).

With ``L = 1`` this is KernelSHAP's additive model. Fit: complementary pairs of coalitions with
sizes uniform on 1..n-1 (Leverage SHAP's design, shared by all images), each weighted by the
Shapley kernel over its sampling probability (``mu / q``), minimising the weighted squared error
plus ``lam * sum (theta_{l+1} - theta_l)^2`` over neighbouring knots of every coefficient (gamma
and each beta_j), ends held exactly. Estimate: the Shapley values of ``g`` in closed form::

    phi_i = (B(1) - B(0)) . gamma / n + own . beta_i + other . sum_{j != i} beta_j,
    own_l = mean_k B_l((k + 1) / n),  other_l = mean_k k / (n - 1) * (B_l((k + 1) / n) - B_l(k / n)),

means over ``k = 0..n-1``. They sum to ``v(all) - v(∅)`` exactly (Shapley values of g telescope).

Why it converges to the Shapley values of v, for every ``lam``: the penalty vanishes on additive
directions (``beta_jl = beta_j`` for all l), so the residual ``r = y - g`` is kernel-orthogonal to
every ``z_i - z_j`` and zero at both ends. KernelSHAP (the constrained additive fit) is linear in
the game and gives r the values 0, so KernelSHAP(y) = KernelSHAP(g) = phi(g); in the limit of many
samples KernelSHAP(y) is phi(v). The size-dependence only lowers the variance: on games whose cell
effects shrink or grow with how much of the face is present it removes what an additive fit leaves
in the residual (docs/explain.md has the measurements).

Knots follow the pairs drawn so far (``knots_for``), so a run stopped at P pairs fits exactly as a
fixed run of P pairs: until the knots reach their cap the evaluated values are kept and the sums
rebuilt on each new knot count. ``lam`` is chosen per image from ``LAMBDAS`` (times the mean diagonal of the normal matrix) by the
smallest jackknife variance; standard errors by a delete-one-group jackknife over ``GROUPS``
interleaved groups of pairs. Memory: the sampled coalitions (shared by the images; pairs x n
booleans) and ``GROUPS x p`` sums per image, ``p = L (n + 1)``; the normal matrices are rebuilt from
the coalitions at each estimate, the total and then one group at a time (two p x p matrices at once).
"""

from __future__ import annotations

import math

import torch

from fstmatch.explain._regression import GROUPS, PairSampler, evaluated_pairs
from fstmatch.explain._result import EstimatorExtras
from fstmatch.explain._utils import ValueFunction

#: penalty weights tried per image, relative to the mean diagonal of the normal matrix (0 = none)
LAMBDAS = (0.0, 0.1, 1.0)
#: most knots: 8 up to 100 players, 5 above (p = L (n + 1) parameters; the solves cost p^3)
MAX_KNOTS = ((100, 8), (10**9, 5))
#: relative ridge that keeps an under-sampled normal matrix solvable (numerically, not a prior)
RIDGE = 1e-9


def knots_for(n: int, pairs: int) -> int:
    """Knots L for n players and a budget of ``pairs``: one per 2n sampled coalitions (so the fit
    has at least 2 coalitions per parameter), at least 2, at most ``MAX_KNOTS`` and n + 1."""
    cap = next(k for limit, k in MAX_KNOTS if n <= limit)
    return max(2, min(cap, n + 1, (2 * pairs) // (2 * n)))


def hat_basis(t: torch.Tensor, knots: int) -> torch.Tensor:
    """(k, L) float64 hat functions of ``knots`` equally spaced knots on [0, 1] at ``t`` (k,)."""
    grid = torch.linspace(0, 1, knots, dtype=torch.float64)
    return (1 - (t.double().view(-1, 1) - grid).abs() * (knots - 1)).clamp_min(0)


class _Basis:
    """The proxy's parameter layout ``theta = [gamma (L), beta (n, L) row-major]`` and the maps
    from it: the normal-matrix contribution of coalitions, the constraint rows and phi(g)."""

    def __init__(self, n: int, knots: int) -> None:
        self.n, self.L = n, knots
        self.p = knots * (n + 1)
        b1, b0 = hat_basis(torch.ones(1), knots)[0], hat_basis(torch.zeros(1), knots)[0]
        k = torch.arange(n, dtype=torch.float64)
        up, low = hat_basis((k + 1) / n, knots), hat_basis(k / n, knots)  # (n, L)
        self.c_gamma = (b1 - b0) / n
        self.own = up.mean(0)
        self.other = (k.view(-1, 1) / max(n - 1, 1) * (up - low)).mean(0)
        # constraints: g(∅) = gamma . B(0) = 0, g(all) = B(1) . (gamma + sum_j beta_j) = gap
        self.C = torch.zeros(2, self.p, dtype=torch.float64)
        self.C[0, :knots] = b0
        self.C[1, :knots] = b1
        self.C[1, knots:] = b1.repeat(n)
        # first differences across knots of each of the n + 1 coefficient groups, as flat indices
        d = torch.diff(torch.eye(knots, dtype=torch.float64), dim=0)
        pen = d.T @ d  # (L, L)
        r, c = torch.nonzero(pen, as_tuple=True)
        offs = (torch.arange(n + 1) * knots).view(-1, 1)
        self.pen_rows, self.pen_cols = (offs + r).flatten(), (offs + c).flatten()
        self.pen_vals = pen[r, c].repeat(n + 1)

    def local(self, z: torch.Tensor, sizes: torch.Tensor):
        """Coalitions grouped by the knot segment their size falls in: yields (rows, index (2 + 2n,),
        X (k, 2 + 2n)), X the nonzero columns of their design rows, ``index`` where they go in theta."""
        n, L = self.n, self.L
        t = sizes.double() / n * (L - 1)
        seg = t.floor().long().clamp(max=L - 2)
        alpha = t - seg
        cells = torch.arange(n) * L
        for j in torch.unique(seg).tolist():
            rows = torch.nonzero(seg == j).flatten()
            a = alpha[rows].view(-1, 1)
            zf = z[rows].double()
            x = torch.cat([1 - a, a, zf * (1 - a), zf * a], dim=1)
            index = torch.cat([torch.tensor([j, j + 1]), L + cells + j, L + cells + j + 1])
            yield rows, index, x

    def gram(self, z: torch.Tensor, sizes: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(p, p) sum of w x x' over coalitions z (k, n) bool with sizes (k,) and weights w (k,)."""
        out = torch.zeros(self.p, self.p, dtype=torch.float64)
        for rows, index, x in self.local(z, sizes):
            out[index.view(-1, 1), index.view(1, -1)] += x.T @ (x * w[rows].view(-1, 1))
        return out

    def phi(self, theta: torch.Tensor) -> torch.Tensor:
        """Shapley values of g: theta (..., p) -> (..., n)."""
        gamma, beta = theta[..., : self.L], theta[..., self.L:].unflatten(-1, (self.n, self.L))
        own = beta @ self.own  # (..., n)
        other = beta @ self.other
        return (gamma @ self.c_gamma).unsqueeze(-1) + own + other.sum(-1, keepdim=True) - other

    def solve(self, M: torch.Tensor, b: torch.Tensor, gap: torch.Tensor, lam: float) -> torch.Tensor:
        """theta (A, p) minimising the penalised weighted squared error with the ends held:
        M (p, p) normal matrix, b (A, p), gap (A,); ``lam`` in absolute units."""
        H = M.clone()
        H.diagonal().add_(RIDGE * float(M.diagonal().mean().clamp_min(1e-300)))
        if lam > 0:
            H.index_put_((self.pen_rows, self.pen_cols), lam * self.pen_vals, accumulate=True)
        rhs = torch.cat([b.T, self.C.T], dim=1)  # (p, A + 2)
        L, info = torch.linalg.cholesky_ex(H)
        sol = torch.cholesky_solve(rhs, L) if int(info) == 0 else torch.linalg.pinv(H, hermitian=True) @ rhs
        u_b, u_c = sol[:, : b.shape[0]], sol[:, b.shape[0]:]  # (p, A), (p, 2)
        d = torch.stack([torch.zeros_like(gap), gap])  # (2, A)
        lagrange = torch.linalg.solve(self.C @ u_c, self.C @ u_b - d)  # (2, A)
        return (u_b - u_c @ lagrange).T


def _both_members(z: torch.Tensor, s: torch.Tensor, w: torch.Tensor, group: torch.Tensor, n: int):
    """Pairs (first members z (k, n), sizes, weights, jackknife groups) as both of their coalitions,
    each with half the pair's weight (the pair is one sample): four tensors of 2k rows."""
    return torch.cat([z, ~z]), torch.cat([s, n - s]), torch.cat([w, w]) / 2, torch.cat([group, group])


class SplineRun:
    """Size-spline KernelSHAP as a resumable state for N images (the interface of
    ``_regression.RegressionRun``): ``run`` adds pairs for some images (the same pairs for all),
    ``estimate`` fits at any point, ``freeze`` keeps an image's estimate while others go on."""

    def __init__(self, vf: ValueFunction, n_images: int, n: int, method: str, seed: int,
                 v_empty: torch.Tensor, v_full: torch.Tensor) -> None:
        self.vf, self.n, self.n_images = vf, n, n_images
        self.sampler = PairSampler("leverage", n, seed)
        self.basis = _Basis(n, knots_for(n, 0))
        self.v_empty, self.gap = v_empty, v_full - v_empty
        self.z: list[torch.Tensor] = []  # the first coalition of each pair, in draw order
        self.sizes: list[torch.Tensor] = []
        self.w: list[torch.Tensor] = []
        self.b = torch.zeros(n_images, GROUPS, self.basis.p, dtype=torch.float64)  # per-group X'W y
        self.k = torch.zeros(n_images, dtype=torch.long)  # pairs per image
        self.drawn = 0
        # the values of every batch (images, v, index of its first pair), kept while the knots can
        # still change (they follow the pairs drawn so far: a run stopped at P pairs fits as a
        # fixed run of P does); dropped once the knots reach their cap
        self.kept: list[tuple] | None = (
            [] if knots_for(n, 0) < knots_for(n, 1 << 62) else None)
        self.frozen: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}
        self.lam = torch.full((n_images,), math.nan, dtype=torch.float64)
        self.per_round = max(2, (1 << 14) // n)

    def run(self, active: torch.Tensor, pairs: int) -> None:
        for z, s, w, v in evaluated_pairs(self.vf, self.sampler, self.v_empty, active, pairs, self.per_round):
            k, first = z.shape[0], self.drawn
            self.z.append(z)
            self.sizes.append(s)
            self.w.append(w)
            self.drawn += k
            self.k[active] += k
            if self.kept is not None:
                self.kept.append((active, v, first, z, s, w))
            knots = knots_for(self.n, self.drawn)
            if knots != self.basis.L:  # rebuild the sums on the new knots from the kept values
                self.basis = _Basis(self.n, knots)
                self.b = torch.zeros(self.n_images, GROUPS, self.basis.p, dtype=torch.float64)
                for kept in self.kept:
                    self._add(*kept)
                if knots == knots_for(self.n, 1 << 62):
                    self.kept = None
            else:
                self._add(active, v, first, z, s, w)

    def _add(self, active: torch.Tensor, v: torch.Tensor, first: int, z: torch.Tensor, s: torch.Tensor,
             w: torch.Tensor) -> None:
        """Add to ``b`` the pairs (z, s, w), drawn first..first+k-1, with values v (A, 2k) of ``active``."""
        k = z.shape[0]
        zz, ss, ww, gg = _both_members(z, s, w, (first + torch.arange(k)) % GROUPS, self.n)
        for rows, index, x in self.basis.local(zz, ss):
            contrib = (v[:, rows] * ww[rows]).unsqueeze(2) * x.unsqueeze(0)  # (a, r, 2 + 2n)
            per_group = torch.zeros(active.numel(), GROUPS, x.shape[1], dtype=torch.float64)
            per_group.index_add_(1, gg[rows], contrib)
            self.b[active.view(-1, 1, 1), torch.arange(GROUPS).view(1, -1, 1), index.view(1, 1, -1)] += per_group

    def _samples(self, count: int):
        """The first ``count`` pairs as both members: (z (2c, n), sizes, weights (half the pair's), group)."""
        z, s, w = (torch.cat(t)[:count] for t in (self.z, self.sizes, self.w))
        return _both_members(z, s, w, torch.arange(count) % GROUPS, self.n)

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, stderr), each (A, n), at the smallest-variance penalty per image. All images in
        ``images`` that are not frozen must have had the same pairs (they are run together)."""
        values = torch.zeros(images.numel(), self.n, dtype=torch.float64)
        stderr = torch.full_like(values, math.nan)
        live = torch.tensor([i not in self.frozen for i in images.tolist()], dtype=torch.bool)
        if live.any():
            ids = images[live]
            v, se, lam = self._fit(ids, int(self.k[ids].max()))
            values[live], stderr[live] = v, se
            self.lam[ids] = lam
        for j, i in enumerate(images.tolist()):
            if i in self.frozen:
                values[j], stderr[j], _ = self.frozen[i]
        return values, stderr

    def _fit(self, ids: torch.Tensor, count: int):
        """For images ``ids`` on the first ``count`` pairs: (values (A, n), stderr (A, n), lambda (A,)),
        each image at the penalty of ``LAMBDAS`` with the smallest jackknife variance (sum over cells).
        The group matrices are built one at a time (the total first), so two p x p matrices live at once."""
        zz, ss, ww, gg = self._samples(count)
        total = float(count)
        M = self.basis.gram(zz, ss, ww) / total
        b = self.b[ids]  # (A, G, p)
        b_all, gap = b.sum(1), self.gap[ids]
        scales = [lam * float(M.diagonal().mean()) for lam in LAMBDAS]
        full = [self.basis.phi(self.basis.solve(M, b_all / total, gap, sc)) for sc in scales]
        reps: list[list[torch.Tensor]] = [[] for _ in LAMBDAS]
        for g in range(GROUPS):
            rows = gg == g
            if not rows.any():
                continue
            kg = int(rows.sum()) // 2
            Mg = (M * total - self.basis.gram(zz[rows], ss[rows], ww[rows])) / (total - kg)
            bg = (b_all - b[:, g]) / (total - kg)
            for j, sc in enumerate(scales):
                reps[j].append(self.basis.phi(self.basis.solve(Mg, bg, gap, sc)))
        best_var = torch.full((ids.numel(),), math.inf, dtype=torch.float64)
        values = torch.zeros(ids.numel(), self.n, dtype=torch.float64)
        stderr = torch.full_like(values, math.nan)
        lam_of = torch.zeros(ids.numel(), dtype=torch.float64)
        for lam, phi, r in zip(LAMBDAS, full, reps):
            if len(r) >= 2:
                r = torch.stack(r)  # (G', A, n) delete-one-group estimates
                var = (len(r) - 1) / len(r) * ((r - r.mean(0)) ** 2).sum(0)  # (A, n)
            else:
                var = torch.full_like(phi, math.nan)
            score = torch.nan_to_num(var.sum(1), nan=math.inf)
            better = (score < best_var) | ((lam == LAMBDAS[0]) & torch.isinf(best_var))
            best_var = torch.where(better, score, best_var)
            values[better], stderr[better], lam_of[better] = phi[better], var[better].sqrt(), lam
        return values, stderr, lam_of

    def freeze(self, images: torch.Tensor) -> None:
        if images.numel():
            values, stderr = self.estimate(images)
            for j, i in enumerate(images.tolist()):
                self.frozen[i] = (values[j], stderr[j], float(self.lam[i]))

    def count(self, images: torch.Tensor) -> torch.Tensor:
        """(A,) pairs each image has had."""
        return self.k[images]

    def used(self) -> torch.Tensor:
        """(N,) orderings' worth of forwards spent per image (rounded)."""
        return (2 * self.k + (self.n - 2)) // (self.n - 1)

    def extras(self) -> EstimatorExtras:
        """The penalty each image's estimate used (relative units) and the knots of the last fit."""
        return EstimatorExtras(spline_lambda=self.lam.clone(), spline_knots=self.basis.L)
