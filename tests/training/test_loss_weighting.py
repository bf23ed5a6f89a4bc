import math

import pytest
import torch
from torch import nn

from training.loss_weighting import LossWeighting, failure_weights, rul_loss

SQRT2 = 2**0.5


def _setup(method, **kwargs):
    """A 2-parameter 'backbone' and one head parameter per task, with known gradients."""
    torch.manual_seed(0)
    shared = nn.Parameter(torch.tensor([1.0, 1.0]))
    head_r, head_h = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(1.0))
    weighting = LossWeighting(method, [shared], [head_r, head_h], **kwargs)
    # rul_loss = 3, health_loss = 2; d(rul_loss)/d(shared) = [3, 0] (norm 3),
    # d(health_loss)/d(shared) = [-1, 1] (norm sqrt 2; conflicting)
    rul_loss = 3 * shared[0] * head_r
    health_loss = (-shared[0] + shared[1] + 2) * head_h
    return weighting, shared, head_r, head_h, rul_loss, health_loss


def _step(weighting, shared, head_r, head_h):
    """Rebuild the losses at the current parameters (as the next batch would) and backward."""
    shared.grad = head_r.grad = head_h.grad = None
    return weighting.backward(3 * shared[0] * head_r, (-shared[0] + shared[1] + 2) * head_h)


def test_fixed_weights_scale_each_task_gradient():
    w, shared, head_r, head_h, lr, lh = _setup("fixed", rul_weight=0.7, health_weight=0.3)
    assert w.backward(lr, lh) == (0.7, 0.3)
    torch.testing.assert_close(shared.grad, torch.tensor([0.7 * 3 - 0.3, 0.3]))


def test_single_task_leaves_health_head_untrained():
    w, shared, head_r, head_h, lr, lh = _setup("single")
    assert w.backward(lr, lh) == (1.0, 0.0)
    assert head_h.grad is None
    torch.testing.assert_close(shared.grad, torch.tensor([3.0, 0.0]))


def test_uncertainty_weights_start_at_half_and_one_and_learn_log_variances():
    w, shared, *_, lr, lh = _setup("uncertainty")
    assert w.backward(lr, lh) == (0.5, 1.0)
    assert w.log_vars.grad is not None and w.log_vars.grad.shape == (2,)
    assert len(list(w.parameters())) == 1


def test_pcgrad_removes_the_conflicting_component():
    w, shared, *_, lr, lh = _setup("pcgrad", rul_weight=0.5, health_weight=0.5)
    w.backward(lr, lh)
    g_r, g_h = torch.tensor([3.0, 0.0]), torch.tensor([-1.0, 1.0])
    dot = torch.dot(g_r, g_h)  # -3: conflict
    proj_r = g_r - dot / g_h.dot(g_h) * g_h  # [1.5, 1.5]
    proj_h = g_h - dot / g_r.dot(g_r) * g_r  # [0, 1]
    torch.testing.assert_close(shared.grad, 0.5 * proj_r + 0.5 * proj_h)
    assert torch.dot(proj_r, g_h) == pytest.approx(0.0) and torch.dot(proj_h, g_r) == pytest.approx(0.0)


def test_failure_weights_are_one_when_healthy_and_two_at_failure():
    y = torch.tensor([0.0, 62.5, 125.0, 200.0])
    torch.testing.assert_close(failure_weights(y), torch.tensor([2.0, 1.5, 1.0, 1.0]))


def test_amnl_rul_loss_is_the_plain_mean_of_weighted_squared_residuals():
    predicted = torch.tensor([10.0, 62.5, 100.0, 200.0])
    target = torch.tensor([0.0, 62.5, 125.0, 200.0])
    # residuals / 125: 0.08, 0, -0.2, 0; squared 0.0064, 0, 0.04, 0; weights 2, 1.5, 1, 1
    assert float(rul_loss("amnl", predicted, target)) == pytest.approx((2 * 0.0064 + 0.04) / 4)
    assert float(rul_loss("grace", predicted, target)) == pytest.approx(0.0132)
    assert float(rul_loss("fixed", predicted, target)) == pytest.approx((0.0064 + 0.04) / 4)


def test_amnl_combines_half_and_half():
    w, shared, head_r, head_h, lr, lh = _setup("amnl")
    assert w.backward(lr, lh) == (0.5, 0.5)
    torch.testing.assert_close(shared.grad, torch.tensor([0.5 * 3 - 0.5, 0.5]))
    assert w.rul_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == 0.0


def test_amnl_normalize_divides_by_the_bias_corrected_loss_ema():
    w, shared, head_r, head_h, lr, lh = _setup("amnl", amnl_normalize=True, ema=0.99)
    # step 1: EMA = 0.01 L, corrected by 1 - 0.99 = 0.01: exactly L (3 and 2)
    assert w.backward(lr, lh) == pytest.approx((0.5 / 3, 0.5 / 2))
    # step 2, same losses: EMA 0.99 * 0.03 + 0.01 * 3 = 0.0597, / (1 - 0.99^2) = 3
    assert _step(w, shared, head_r, head_h) == pytest.approx((0.5 / 3, 0.5 / 2))
    assert w.loss_ema == pytest.approx([0.0597, 0.0398])


def test_gaba_weights_are_the_other_tasks_share_of_the_gradient_norms():
    w, shared, *_, lr, lh = _setup("gaba", warmup_steps=0, ema=0.0, floor=0.0)
    w_r, w_h = w.backward(lr, lh)
    # g_r = 3, g_h = sqrt 2: lambda_rul = g_h / (g_r + g_h), lambda_health = g_r / (g_r + g_h)
    assert (w_r, w_h) == pytest.approx((SQRT2 / (3 + SQRT2), 3 / (3 + SQRT2)))
    # so the weighted task gradients on the backbone have equal norms
    assert w_r * 3 == pytest.approx(w_h * SQRT2)
    expected = w_r * torch.tensor([3.0, 0.0]) + w_h * torch.tensor([-1.0, 1.0])
    torch.testing.assert_close(shared.grad, expected)


def test_gaba_warms_up_at_equal_weights_then_smooths_from_them():
    w, shared, head_r, head_h, lr, lh = _setup("gaba", warmup_steps=2, ema=0.99, floor=0.05)
    assert w.backward(lr, lh) == (0.5, 0.5)
    torch.testing.assert_close(shared.grad, torch.tensor([1.0, 0.5]))
    assert _step(w, shared, head_r, head_h) == (0.5, 0.5)
    w_r, w_h = _step(w, shared, head_r, head_h)  # step 3: 0.99 * 0.5 + 0.01 * raw
    assert w_r == pytest.approx(0.99 * 0.5 + 0.01 * SQRT2 / (3 + SQRT2))  # 0.498204
    assert w_r + w_h == pytest.approx(1.0)


def test_gaba_floor_keeps_the_smaller_weight_at_five_percent():
    shared = nn.Parameter(torch.tensor([1.0, 1.0]))
    head_r, head_h = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(1.0))
    w = LossWeighting("gaba", [shared], [head_r, head_h], warmup_steps=0, ema=0.0, floor=0.05)
    # g_r = 99, g_h = 1: raw lambda_rul = 1 / 100 = 0.01 -> floored to 0.05, health 0.95
    assert w.backward(99 * shared[0] * head_r, shared[1] * head_h) == pytest.approx((0.05, 0.95))


def test_grace_is_gaba_weighting_with_the_failure_weighted_rul_loss():
    w, shared, *_, lr, lh = _setup("grace", warmup_steps=0, ema=0.0, floor=0.0)
    assert w.backward(lr, lh) == pytest.approx((SQRT2 / (3 + SQRT2), 3 / (3 + SQRT2)))
    predicted, target = torch.tensor([10.0]), torch.tensor([0.0])
    assert float(w.rul_loss(predicted, target)) == pytest.approx(2 * 0.08**2)


def test_gradnorm_first_step_uses_unit_weights_then_moves_them_toward_equal_gradient_norms():
    w, shared, *_, lr, lh = _setup("gradnorm")
    assert w.backward(lr, lh) == (1.0, 1.0)
    torch.testing.assert_close(shared.grad, torch.tensor([2.0, 1.0]))
    # L(0) = (3, 2), so r = (1, 1); G = (3, sqrt 2), target mean(G) = 2.2071 for both;
    # d/dw sum|G - target| = (+3, -sqrt 2); a step of 0.025: (0.925, 1.0354), renormalised to sum 2
    stepped = [1 - 0.025 * 3, 1 + 0.025 * SQRT2]
    assert w.gradnorm_weights == pytest.approx([2 * x / sum(stepped) for x in stepped])
    assert w.gradnorm_weights == pytest.approx([0.943706, 1.056294], abs=1e-6)


def test_gradnorm_restoring_force_favours_the_task_that_trains_slower():
    w, *_ = _setup("gradnorm", alpha=1.5)
    w.initial_losses = (1.0, 1.0)
    # equal gradient norms, but the RUL loss has fallen to 0.25 and the health loss only to 1:
    # inverse rates 0.25 and 1 -> r = 0.4, 1.6; targets 0.4^1.5 and 1.6^1.5 times mean G = 1
    w._gradnorm_weights((0.25, 1.0), (1.0, 1.0))
    # sign(G - target) = (+1, -1): the RUL weight falls, the health weight rises, by 0.025 * 1
    assert w.gradnorm_weights == pytest.approx([0.975, 1.025])


def test_dwa_weights_are_one_for_two_epochs_then_a_softmax_of_loss_ratios():
    w, shared, head_r, head_h, lr, lh = _setup("dwa")
    assert w.backward(lr, lh) == (1.0, 1.0)
    _step(w, shared, head_r, head_h)
    w.end_epoch()
    assert w.epoch_losses == [pytest.approx((3.0, 2.0))]  # the epoch's mean losses
    assert _step(w, shared, head_r, head_h) == (1.0, 1.0)  # one epoch: not yet
    w.epoch_losses = [(4.0, 2.0), (2.0, 2.0)]  # ratios 0.5 and 1, T = 2
    w_r, w_h = _step(w, shared, head_r, head_h)
    assert w_r == pytest.approx(2 / (1 + math.exp(0.25)))  # 0.87565
    assert w_r + w_h == pytest.approx(2.0)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="expected one of single, fixed, uncertainty, pcgrad, gradnorm, dwa"):
        LossWeighting("grad-balance", [], [])
