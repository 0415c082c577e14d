"""Toy games with closed-form Shapley values, for tests of fstmatch.explain.

``CellGame`` reads one feature per grid cell, ``z_i`` = the mean of the input over cell i (all
channels), and returns K logits built from hand-set terms:

    logit_k = c_k + sum_i a_ki z_i + sum_{i<j} B_kij z_i z_j + sum_T u_kT prod_{i in T} z_i
              + w_k max_{i in M_k} z_i

On an all-ones image with the zero baseline, z is the coalition's indicator vector and the Shapley
value of cell i is: a_ki + 1/2 sum_j (B_kij + B_kji) + sum_{T ∋ i} u_kT / |T| + [i in M_k] w_k / |M_k|.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CellGame(nn.Module):
    def __init__(self, grid: int, n_classes: int = 2, seed: int = 0, *, linear: bool = True, pairs: bool = True,
                 products: bool = True, maxes: bool = True) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        p = grid * grid
        self.grid = grid
        self.c = nn.Parameter(torch.randn(n_classes, generator=gen))
        self.a = nn.Parameter(torch.randn(n_classes, p, generator=gen) * linear)
        self.b = nn.Parameter(torch.randn(n_classes, p, p, generator=gen).triu(1) * pairs)
        # one unanimity (product) term over 3 cells and one max term over 4 cells per class
        self.t_sets = [torch.randperm(p, generator=gen)[:3] for _ in range(n_classes)]
        self.m_sets = [torch.randperm(p, generator=gen)[:4] for _ in range(n_classes)]
        self.u = nn.Parameter(2 * torch.randn(n_classes, generator=gen) * products)
        self.w = nn.Parameter(2 * torch.randn(n_classes, generator=gen) * maxes)
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // self.grid
        return F.avg_pool2d(x.mean(1, keepdim=True), h).flatten(1)  # (N, P)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        out = self.c + z @ self.a.T + torch.einsum("ni,kij,nj->nk", z, self.b, z)
        prod = torch.stack([z[:, t].prod(1) for t in self.t_sets], 1)
        mx = torch.stack([z[:, m].amax(1) for m in self.m_sets], 1)
        return out + self.u * prod + self.w * mx

    def closed_form(self, k: int) -> torch.Tensor:
        """Shapley values (P,) for class k on an all-ones image with the zero baseline."""
        with torch.no_grad():
            bsym = self.b[k] + self.b[k].T
            phi = self.a[k] + 0.5 * bsym.sum(1)
            phi[self.t_sets[k]] += self.u[k] / len(self.t_sets[k])
            phi[self.m_sets[k]] += self.w[k] / len(self.m_sets[k])
        return phi.double()


def small_cnn(seed: int = 0, n_classes: int = 3, batchnorm: bool = True) -> nn.Module:
    """A small random CNN (conv-BN-ReLU x2, pooled linear head) in eval mode, BN statistics set."""
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8) if batchnorm else nn.Identity(), nn.ReLU(),
              nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8) if batchnorm else nn.Identity(), nn.ReLU(),
              nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, n_classes)]
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return net.eval()
