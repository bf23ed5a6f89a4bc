"""How the two task losses become one gradient: the `--loss-weighting` choices.

- `single`: RUL loss only (the health head is not trained; a single-task baseline).
- `fixed`: `rul_weight * L_rul + health_weight * L_health` (e.g. 0.5/0.5, 0.7/0.3).
- `uncertainty`: learned homoscedastic task uncertainty, Kendall, Gal & Cipolla, "Multi-task
  learning using uncertainty to weigh losses", CVPR 2018: 0.5 e^-s_r L_rul + 0.5 s_r for the
  regression task, e^-s_h L_health + 0.5 s_h for the classification task (s = log sigma^2).
- `grad-balance`: task weights proportional to 1 / ||grad of each task loss on the shared
  backbone||, the norms EMA-smoothed, weights summing to 1, so neither task dominates the
  shared layers.
- `pcgrad`: Yu et al., "Gradient surgery for multi-task learning", NeurIPS 2020: where the two
  tasks' backbone gradients conflict (negative dot product), each is projected onto the normal
  plane of the other; then summed with the fixed weights.

The gradient methods take each task's gradient separately (two backward passes instead of
one) and write the combination into `.grad`.
"""

import torch
from torch import nn

METHODS = ("single", "fixed", "uncertainty", "grad-balance", "pcgrad")


class LossWeighting(nn.Module):
    """Call `backward(rul_loss, health_loss)` instead of `loss.backward()`; returns the task
    weights used (for logging). Its own parameters (uncertainty) go to the optimiser."""

    def __init__(
        self,
        method: str,
        shared: list[nn.Parameter],
        heads: list[nn.Parameter],
        rul_weight: float = 0.5,
        health_weight: float = 0.5,
        ema: float = 0.9,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown loss weighting {method!r}; expected one of {', '.join(METHODS)}")
        self.method = method
        self.shared, self.heads = shared, heads
        self.fixed = (rul_weight, health_weight)
        self.ema = ema
        self.norms: tuple[float, float] | None = None  # EMA of the task gradient norms
        # s = log sigma^2 per task; zero start means weights 0.5 and 1 at first
        self.log_vars = nn.Parameter(torch.zeros(2)) if method == "uncertainty" else None

    def backward(self, rul_loss: torch.Tensor, health_loss: torch.Tensor) -> tuple[float, float]:
        if self.method == "single":
            rul_loss.backward()
            return 1.0, 0.0
        if self.method == "fixed":
            (self.fixed[0] * rul_loss + self.fixed[1] * health_loss).backward()
            return self.fixed
        if self.method == "uncertainty":
            assert self.log_vars is not None
            s_r, s_h = self.log_vars[0], self.log_vars[1]
            loss = 0.5 * torch.exp(-s_r) * rul_loss + 0.5 * s_r + torch.exp(-s_h) * health_loss + 0.5 * s_h
            loss.backward()
            return 0.5 * torch.exp(-s_r).item(), torch.exp(-s_h).item()
        return self._gradient_surgery(rul_loss, health_loss)

    def _gradient_surgery(self, rul_loss: torch.Tensor, health_loss: torch.Tensor) -> tuple[float, float]:
        params = self.shared + self.heads
        g_rul = torch.autograd.grad(rul_loss, params, retain_graph=True, allow_unused=True)
        g_health = torch.autograd.grad(health_loss, params, allow_unused=True)
        g_rul = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_rul, strict=True)]
        g_health = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_health, strict=True)]
        n_shared = len(self.shared)
        flat_r = torch.cat([g.flatten() for g in g_rul[:n_shared]])  # (P_shared,)
        flat_h = torch.cat([g.flatten() for g in g_health[:n_shared]])

        if self.method == "grad-balance":
            norms = (float(flat_r.norm()), float(flat_h.norm()))
            self.norms = (
                norms
                if self.norms is None
                else tuple(
                    self.ema * old + (1 - self.ema) * new for old, new in zip(self.norms, norms, strict=True)
                )
            )
            inverse = [1.0 / max(n, 1e-12) for n in self.norms]
            w_r, w_h = inverse[0] / sum(inverse), inverse[1] / sum(inverse)
            shared_r, shared_h = g_rul[:n_shared], g_health[:n_shared]
        else:  # pcgrad: project away the conflicting component, shared layers only
            w_r, w_h = self.fixed
            dot = torch.dot(flat_r, flat_h)
            shared_r, shared_h = g_rul[:n_shared], g_health[:n_shared]
            if dot < 0:
                coef_r = dot / flat_h.pow(2).sum().clamp_min(1e-12)
                coef_h = dot / flat_r.pow(2).sum().clamp_min(1e-12)
                shared_r = [
                    gr - coef_r * gh for gr, gh in zip(g_rul[:n_shared], g_health[:n_shared], strict=True)
                ]
                shared_h = [
                    gh - coef_h * gr for gr, gh in zip(g_rul[:n_shared], g_health[:n_shared], strict=True)
                ]

        combined = [
            w_r * r + w_h * h
            for r, h in zip(shared_r + g_rul[n_shared:], shared_h + g_health[n_shared:], strict=True)
        ]
        for p, g in zip(params, combined, strict=True):
            p.grad = g if p.grad is None else p.grad + g
        return w_r, w_h
