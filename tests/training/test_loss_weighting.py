import pytest
import torch
from torch import nn

from training.loss_weighting import LossWeighting


def _setup(method, **kwargs):
    """A 2-parameter 'backbone' and one head parameter per task, with known gradients."""
    torch.manual_seed(0)
    shared = nn.Parameter(torch.tensor([1.0, 1.0]))
    head_r, head_h = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(1.0))
    weighting = LossWeighting(method, [shared], [head_r, head_h], **kwargs)
    # d(rul_loss)/d(shared) = [3, 0]; d(health_loss)/d(shared) = [-1, 1] (conflicting)
    rul_loss = 3 * shared[0] * head_r
    health_loss = (-shared[0] + shared[1]) * head_h
    return weighting, shared, head_r, head_h, rul_loss, health_loss


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


def test_grad_balance_weights_are_inverse_gradient_norms():
    w, shared, *_, lr, lh = _setup("grad-balance")
    w_r, w_h = w.backward(lr, lh)
    # norms 3 and sqrt(2): weights proportional to 1/3 and 1/sqrt(2), summing to 1
    inv = [1 / 3, 1 / 2**0.5]
    assert (w_r, w_h) == pytest.approx((inv[0] / sum(inv), inv[1] / sum(inv)))
    # the weighted task gradients on the backbone then have equal norms
    assert w_r * 3 == pytest.approx(w_h * 2**0.5)


def test_grad_balance_smooths_norms_with_ema():
    w, _, _, _, lr, lh = _setup("grad-balance", ema=0.9)
    w.norms = (1.0, 1.0)  # as if earlier steps had seen norms of 1
    w.backward(lr, lh)
    assert w.norms == pytest.approx((0.9 + 0.1 * 3, 0.9 + 0.1 * 2**0.5))


def test_pcgrad_removes_the_conflicting_component():
    w, shared, *_, lr, lh = _setup("pcgrad", rul_weight=0.5, health_weight=0.5)
    w.backward(lr, lh)
    g_r, g_h = torch.tensor([3.0, 0.0]), torch.tensor([-1.0, 1.0])
    dot = torch.dot(g_r, g_h)  # -3: conflict
    proj_r = g_r - dot / g_h.dot(g_h) * g_h  # [1.5, 1.5]
    proj_h = g_h - dot / g_r.dot(g_r) * g_r  # [0, 1]
    torch.testing.assert_close(shared.grad, 0.5 * proj_r + 0.5 * proj_h)
    assert torch.dot(proj_r, g_h) == pytest.approx(0.0) and torch.dot(proj_h, g_r) == pytest.approx(0.0)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="expected one of single, fixed, uncertainty, grad-balance, pcgrad"):
        LossWeighting("gradnorm2", [], [])
