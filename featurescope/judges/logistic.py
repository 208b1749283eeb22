"""L2-regularised logistic regression (standardised features, L-BFGS) with the penalty chosen by k-fold
cross-validation on the training rows only. Small and exact enough for a few hundred labelled answers."""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Bool, Float
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class Logistic:
    mean: Float[Tensor, " f"]
    scale: Float[Tensor, " f"]
    weight: Float[Tensor, " f"]
    bias: float
    l2: float

    def logit(self, x: Float[Tensor, "n f"]) -> Float[Tensor, " n"]:
        return ((x - self.mean) / self.scale) @ self.weight + self.bias

    def prob(self, x: Float[Tensor, "n f"]) -> Float[Tensor, " n"]:
        return torch.sigmoid(self.logit(x))

    def state(self, prefix: str) -> dict[str, Tensor]:
        return {
            f"{prefix}.mean": self.mean,
            f"{prefix}.scale": self.scale,
            f"{prefix}.weight": self.weight,
            f"{prefix}.bias": torch.tensor([self.bias, self.l2]),
        }

    @classmethod
    def from_state(cls, state: dict[str, Tensor], prefix: str) -> Logistic:
        b = state[f"{prefix}.bias"]
        return cls(
            state[f"{prefix}.mean"], state[f"{prefix}.scale"], state[f"{prefix}.weight"], float(b[0]), float(b[1])
        )


def fit(x: Float[Tensor, "n f"], y: Bool[Tensor, " n"] | Float[Tensor, " n"], l2: float = 1.0) -> Logistic:
    """Minimise mean log-loss + ``l2 / n * |w|^2 / 2`` on standardised features (constant features get scale 1)."""
    x = x.double()
    t = y.double()
    mean = x.mean(0)
    scale = x.std(0, unbiased=False)
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
    z = (x - mean) / scale
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    n = len(t)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, t) + l2 / n * 0.5 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)  # pyright: ignore[reportArgumentType]
    return Logistic(mean.float(), scale.float(), w.detach().float(), float(b.detach()), l2)


def fit_cv(
    x: Float[Tensor, "n f"],
    y: Bool[Tensor, " n"],
    l2_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0),
    folds: int = 5,
    seed: int = 0,
) -> Logistic:
    """Choose ``l2`` by ``folds``-fold cross-validated log-loss on (x, y), then refit on all rows."""
    n = len(y)
    if n < 2 * folds or int(y.sum()) in (0, n):
        return fit(x, y, l2_grid[len(l2_grid) // 2])
    g = torch.Generator().manual_seed(seed)
    fold = torch.randperm(n, generator=g) % folds
    best, best_l2 = float("inf"), l2_grid[0]
    for l2 in l2_grid:
        loss = 0.0
        for k in range(folds):
            tr, te = fold != k, fold == k
            if int(y[tr].sum()) in (0, int(tr.sum())):
                continue
            m = fit(x[tr], y[tr], l2)
            p = m.prob(x[te]).clamp(1e-6, 1 - 1e-6)
            loss += float(torch.nn.functional.binary_cross_entropy(p.double(), y[te].double(), reduction="sum"))
        if loss < best:
            best, best_l2 = loss, l2
    return fit(x, y, best_l2)
