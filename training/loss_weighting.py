"""How the two task losses become one gradient: the `--loss-weighting` choices.

Ours and the literature's:
- `single`: RUL loss only (the health head is not trained; a single-task baseline).
- `fixed`: `rul_weight * L_rul + health_weight * L_health` (e.g. 0.5/0.5, 0.7/0.3).
- `uncertainty`: learned homoscedastic task uncertainty, Kendall, Gal & Cipolla, "Multi-task
  learning using uncertainty to weigh losses", CVPR 2018: 0.5 e^-s_r L_rul + 0.5 s_r for the
  regression task, e^-s_h L_health + 0.5 s_h for the classification task (s = log sigma^2).
- `pcgrad`: Yu et al., "Gradient surgery for multi-task learning", NeurIPS 2020: where the two
  tasks' backbone gradients conflict (negative dot product), each is projected onto the normal
  plane of the other; then summed with the fixed weights.
- `gradnorm`: Chen et al., "GradNorm: gradient normalization for adaptive loss balancing in
  deep multitask networks", ICML 2018, alpha = 1.5: learned weights w_i (sum K) pulled so that
  each task's weighted gradient norm G_i = w_i ||grad_shared L_i|| approaches
  mean(G) * r_i^alpha, r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0)).
- `dwa`: Liu, Johns & Davison, "End-to-end multi-task learning with attention" (Dynamic Weight
  Average), CVPR 2019, T = 2: w_k(t) = K exp(r_k / T) / sum_i exp(r_i / T), r_k = L_k(t-1) /
  L_k(t-2) from the mean task losses of the last two epochs; 1 each for the first two epochs.

The book the product grew out of, "Gradient-Aware Multi-Task Learning for Predictive
Maintenance" (book-ai.org/books/predictive-maintenance), defines three more:
- `amnl` (accuracy-first): the RUL loss is a failure-biased weighted MSE, the plain mean of
  w_i r_i^2 with w_i = 1 + clip(1 - y_i / 125, 0, 1) (1 for a healthy engine, 2 at failure);
  total (1 - lambda) wMSE + lambda CE with lambda = 0.5. The book's older edition divides each
  task loss by a bias-corrected EMA of itself (beta = 0.99): `--amnl-normalize`.
- `gaba` (safety-first): g_i = ||grad_shared L_i||_2 on the shared backbone, raw weights
  lambda_i = (sum g - g_i) / ((K - 1) sum g) (for two tasks lambda_rul = g_h / (g_r + g_h)),
  an EMA with beta = 0.99 on the weights, 100 warm-up steps at 1/K, a floor of 0.05 on each.
- `grace` (balanced): AMNL's weighted MSE as the RUL loss inside GABA's task weighting.

GABA replaces the project's earlier `grad-balance` (weights proportional to 1 / ||g_i||, an EMA
of 0.9 on the norms, no warm-up or floor): for two tasks its raw weights are exactly GABA's, so
only the smoothing differed. `gaba --gaba-ema 0.9 --gaba-warmup 0 --gaba-floor 0` is that
method up to smoothing the weights instead of the norms.

The gradient methods (gaba, grace, pcgrad, gradnorm) take each task's gradient separately
(two backward passes instead of one) and write the combination into `.grad`. Residuals are
on the scale of the RUL head, rul / rul_cap, as for the plain MSE.
"""

import math

import torch
from torch import nn

from training.constants import RUL_CAP

METHODS = ("single", "fixed", "uncertainty", "pcgrad", "gradnorm", "dwa", "amnl", "gaba", "grace")
GRADIENT_METHODS = ("gaba", "grace", "pcgrad", "gradnorm")
FAILURE_WEIGHTED = ("amnl", "grace")  # their RUL loss is the failure-biased weighted MSE
K = 2  # tasks: RUL regression, health classification

# The book's and the papers' constants (TrainConfig's defaults; each is a rul-train flag).
AMNL_LAMBDA = 0.5
BOOK_EMA = 0.99  # GABA's EMA on the weights; the older AMNL edition's EMA on the losses
GABA_WARMUP_STEPS = 100
GABA_FLOOR = 0.05
GRADNORM_ALPHA = 1.5
GRADNORM_LR = 0.025  # step size of the weights' own update (the paper's weights have their own)
DWA_TEMPERATURE = 2.0


def failure_weights(target: torch.Tensor, cap: float = RUL_CAP) -> torch.Tensor:
    """AMNL's sample weights w_i = 1 + clip(1 - y_i / cap, 0, 1): 1 healthy, 2 at failure."""
    return 1.0 + torch.clamp(1.0 - target / cap, 0.0, 1.0)


def rul_loss(
    method: str, predicted: torch.Tensor, target: torch.Tensor, cap: float = RUL_CAP
) -> torch.Tensor:
    """The RUL task loss of `method` on (B,) cycles: MSE of rul / cap, failure-weighted for
    AMNL and GRACE (the plain mean of w_i r_i^2, not normalised by the weights' sum)."""
    if method in FAILURE_WEIGHTED:
        return (failure_weights(target, cap) * (predicted / cap - target / cap) ** 2).mean()
    return nn.functional.mse_loss(predicted / cap, target / cap)


class LossWeighting(nn.Module):
    """Call `backward(rul_loss, health_loss)` instead of `loss.backward()`; returns the task
    weights used (for logging). Call `end_epoch()` after each epoch (DWA reads it). Its own
    parameters (uncertainty) go to the optimiser."""

    def __init__(
        self,
        method: str,
        shared: list[nn.Parameter],
        heads: list[nn.Parameter],
        rul_weight: float = 0.5,
        health_weight: float = 0.5,
        *,
        amnl_lambda: float = AMNL_LAMBDA,
        amnl_normalize: bool = False,
        ema: float = BOOK_EMA,
        warmup_steps: int = GABA_WARMUP_STEPS,
        floor: float = GABA_FLOOR,
        alpha: float = GRADNORM_ALPHA,
        temperature: float = DWA_TEMPERATURE,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown loss weighting {method!r}; expected one of {', '.join(METHODS)}")
        if not 0.0 <= floor < 1.0 / K:
            raise ValueError(f"floor {floor}: expected 0 <= floor < {1.0 / K} (the weights sum to 1)")
        self.method = method
        self.shared, self.heads = shared, heads
        self.fixed = (rul_weight, health_weight)
        self.amnl_lambda, self.amnl_normalize = amnl_lambda, amnl_normalize
        self.ema, self.warmup_steps, self.floor = ema, warmup_steps, floor
        self.alpha, self.temperature = alpha, temperature
        self.steps = 0
        self.weights_ema: tuple[float, float] | None = None  # GABA / GRACE, after the warm-up
        self.loss_ema = [0.0, 0.0]  # AMNL --amnl-normalize: EMA of each task loss (not bias-corrected)
        self.gradnorm_weights = [1.0, 1.0]  # GradNorm's learned w_i, summing to K
        self.initial_losses: tuple[float, float] | None = None  # GradNorm's L_i(0)
        self.epoch_losses: list[tuple[float, float]] = []  # DWA: each finished epoch's mean losses
        self._epoch_sum, self._epoch_steps = [0.0, 0.0], 0
        # s = log sigma^2 per task; zero start means weights 0.5 and 1 at first
        self.log_vars = nn.Parameter(torch.zeros(2)) if method == "uncertainty" else None

    def rul_loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return rul_loss(self.method, predicted, target)

    def backward(self, rul_loss: torch.Tensor, health_loss: torch.Tensor) -> tuple[float, float]:
        self.steps += 1
        if self.method == "single":
            rul_loss.backward()
            return 1.0, 0.0
        if self.method == "uncertainty":
            assert self.log_vars is not None
            s_r, s_h = self.log_vars[0], self.log_vars[1]
            loss = 0.5 * torch.exp(-s_r) * rul_loss + 0.5 * s_r + torch.exp(-s_h) * health_loss + 0.5 * s_h
            loss.backward()
            return 0.5 * torch.exp(-s_r).item(), torch.exp(-s_h).item()
        if self.method in GRADIENT_METHODS:
            return self._gradient_combination(rul_loss, health_loss)
        losses = (rul_loss.item(), health_loss.item())
        if self.method == "fixed":
            w_r, w_h = self.fixed
        else:
            w_r, w_h = self._amnl_weights(*losses) if self.method == "amnl" else self._dwa_weights()
        (w_r * rul_loss + w_h * health_loss).backward()
        self._epoch_sum = [self._epoch_sum[0] + losses[0], self._epoch_sum[1] + losses[1]]
        self._epoch_steps += 1
        return w_r, w_h

    def end_epoch(self) -> None:
        """Close an epoch: its mean task losses become DWA's next ratios."""
        if self._epoch_steps:
            self.epoch_losses.append(
                (self._epoch_sum[0] / self._epoch_steps, self._epoch_sum[1] / self._epoch_steps)
            )
        self._epoch_sum, self._epoch_steps = [0.0, 0.0], 0

    def _amnl_weights(self, l_rul: float, l_health: float) -> tuple[float, float]:
        """(1 - lambda, lambda); with --amnl-normalize each divided by its loss's bias-corrected EMA."""
        w_r, w_h = 1.0 - self.amnl_lambda, self.amnl_lambda
        if not self.amnl_normalize:
            return w_r, w_h
        b = self.ema
        self.loss_ema = [
            b * m + (1 - b) * loss for m, loss in zip(self.loss_ema, (l_rul, l_health), strict=True)
        ]
        correction = 1.0 - b**self.steps
        return w_r * correction / self.loss_ema[0], w_h * correction / self.loss_ema[1]

    def _dwa_weights(self) -> tuple[float, float]:
        if len(self.epoch_losses) < 2:
            return 1.0, 1.0
        (r1, h1), (r2, h2) = self.epoch_losses[-2], self.epoch_losses[-1]
        ratios = (r2 / max(r1, 1e-12), h2 / max(h1, 1e-12))
        exps = [math.exp(r / self.temperature) for r in ratios]
        return K * exps[0] / sum(exps), K * exps[1] / sum(exps)

    def _gaba_weights(self, norm_r: float, norm_h: float) -> tuple[float, float]:
        """1/K during the warm-up; then lambda_i = (sum g - g_i) / ((K - 1) sum g), EMA-smoothed
        (starting from 1/K), each at least `floor` (they still sum to 1)."""
        if self.steps <= self.warmup_steps:
            return 1.0 / K, 1.0 / K
        total = max(norm_r + norm_h, 1e-12)
        raw = ((total - norm_r) / ((K - 1) * total), (total - norm_h) / ((K - 1) * total))
        previous = self.weights_ema or (1.0 / K, 1.0 / K)
        self.weights_ema = (
            self.ema * previous[0] + (1 - self.ema) * raw[0],
            self.ema * previous[1] + (1 - self.ema) * raw[1],
        )
        # two weights summing to 1: flooring one at `floor` caps the other at 1 - floor
        w_r = min(max(self.weights_ema[0], self.floor), 1.0 - self.floor)
        return w_r, 1.0 - w_r

    def _gradnorm_weights(
        self, losses: tuple[float, float], norms: tuple[float, float]
    ) -> tuple[float, float]:
        """The weights to use now, then one step of GradNorm's update of them: the gradient of
        sum_i |w_i n_i - mean(G) r_i^alpha| in w_i (the target held constant, as in the paper)
        is sign(G_i - target_i) n_i; after the step the weights are renormalised to sum K."""
        if self.initial_losses is None:
            self.initial_losses = losses
        used = (self.gradnorm_weights[0], self.gradnorm_weights[1])
        g = [w * n for w, n in zip(used, norms, strict=True)]
        mean_g = sum(g) / K
        inverse_rate = [loss / max(l0, 1e-12) for loss, l0 in zip(losses, self.initial_losses, strict=True)]
        r = [x / max(sum(inverse_rate) / K, 1e-12) for x in inverse_rate]
        target = [mean_g * ri**self.alpha for ri in r]
        grad = [
            math.copysign(1.0, gi - ti) * n if gi != ti else 0.0
            for gi, ti, n in zip(g, target, norms, strict=True)
        ]
        stepped = [max(w - GRADNORM_LR * d, 1e-3) for w, d in zip(used, grad, strict=True)]
        self.gradnorm_weights = [K * w / sum(stepped) for w in stepped]
        return used

    def _gradient_combination(self, rul_loss: torch.Tensor, health_loss: torch.Tensor) -> tuple[float, float]:
        params = self.shared + self.heads
        g_rul = torch.autograd.grad(rul_loss, params, retain_graph=True, allow_unused=True)
        g_health = torch.autograd.grad(health_loss, params, allow_unused=True)
        g_rul = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_rul, strict=True)]
        g_health = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_health, strict=True)]
        n_shared = len(self.shared)
        flat_r = torch.cat([g.flatten() for g in g_rul[:n_shared]])  # (P_shared,)
        flat_h = torch.cat([g.flatten() for g in g_health[:n_shared]])
        shared_r, shared_h = g_rul[:n_shared], g_health[:n_shared]
        norms = (float(flat_r.norm()), float(flat_h.norm()))

        if self.method in ("gaba", "grace"):
            w_r, w_h = self._gaba_weights(*norms)
        elif self.method == "gradnorm":
            w_r, w_h = self._gradnorm_weights((rul_loss.item(), health_loss.item()), norms)
        else:  # pcgrad: project away the conflicting component, shared layers only
            w_r, w_h = self.fixed
            dot = torch.dot(flat_r, flat_h)
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
