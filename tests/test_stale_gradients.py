"""No stale gradients: a parameter a backward does not reach is skipped, never updated with its old gradient.

minseg's rule is PyTorch's: ``train_step`` clears every gradient first
(``optimizer.zero_grad()``: ``p.grad = None``), a backward writes the
gradients it reaches, and ``SGD`` / ``Adam`` skip a parameter whose grad is
None entirely (no update, no momentum / Adam step, no weight decay). A zero
gradient is different: momentum, Adam's moments and weight decay still move it.
"""
import numpy as np
import pytest

import minseg.nn as nn
from minseg.optim import SGD, Adam
from minseg.train import train_step

from conftest import torch_or_skip

OPTIMIZERS = {
    "sgd_momentum": (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
                     lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2)),
    "sgd_nesterov": (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                     lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    "adam": (lambda ps: Adam(ps, lr=0.05, weight_decay=1e-2),
             lambda torch, ps: torch.optim.Adam(ps, lr=0.05, weight_decay=1e-2)),
}


class TwoBranch(nn.Module):
    """``y = a(x) + b(x)`` while ``use_b``, else ``y = a(x)``: branch b is skipped, forward and backward."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1, rng=0, dtype=np.float64)
        self.b = nn.Conv2d(2, 3, 1, rng=1, dtype=np.float64)
        self.use_b = True

    def forward(self, x):
        y = self.a.forward(x)
        return y + self.b.forward(x) if self.use_b else y

    def backward(self, dy):
        dx = self.a.backward(dy)
        return dx + self.b.backward(dy) if self.use_b else dx


def _batch(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 2, 4, 4)), rng.integers(0, 3, size=(2, 4, 4))


def _snapshot(module):
    return [p.data.copy() for p in module.parameters()]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_skipped_branch_does_not_move_in_train_step(name):
    """Step 1 trains both branches; steps 2-5 skip b: b stays exactly where step 1 left it, a keeps learning."""
    model = TwoBranch()
    opt = OPTIMIZERS[name][0](model.parameters())
    train_step(model, opt, *_batch(0))
    b_after_step_1, a_after_step_1 = _snapshot(model.b), _snapshot(model.a)
    assert all(p.grad is not None for p in model.b.parameters())     # b had a gradient, and a momentum/moment
    model.use_b = False
    for step in range(2, 6):
        train_step(model, opt, *_batch(step))
        for p, before in zip(model.b.parameters(), b_after_step_1):
            assert p.grad is None                                      # cleared, and nothing wrote it
            np.testing.assert_array_equal(p.data, before)              # not moved: no stale update, no momentum
    assert all(not np.array_equal(p.data, before) for p, before in zip(model.a.parameters(), a_after_step_1))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_skipped_branch_matches_torch(name):
    """The same schedule in PyTorch (zero_grad sets grads to None; b unused after step 1): every parameter agrees."""
    torch = torch_or_skip()
    make_ours, make_theirs = OPTIMIZERS[name]
    model = TwoBranch()
    t_params = {k: torch.tensor(p.data.copy(), requires_grad=True) for k, p in model.named_parameters()}
    opt, topt = make_ours(model.parameters()), make_theirs(torch, list(t_params.values()))

    def torch_forward(x, use_b):
        conv = torch.nn.functional.conv2d
        y = conv(x, t_params["a.weight"], t_params["a.bias"])
        return y + conv(x, t_params["b.weight"], t_params["b.bias"]) if use_b else y

    for step in range(1, 6):
        use_b = step in (1, 4)                   # b skipped on steps 2, 3 and 5, back on step 4
        model.use_b = use_b
        images, labels = _batch(step)
        loss = train_step(model, opt, images, labels)
        topt.zero_grad(set_to_none=True)
        t_loss = torch.nn.functional.cross_entropy(torch_forward(torch.tensor(images), use_b),
                                                   torch.tensor(labels), ignore_index=255)
        t_loss.backward()
        topt.step()
        assert loss == pytest.approx(t_loss.item(), rel=1e-12)
        for key, p in model.named_parameters():
            np.testing.assert_allclose(p.data, t_params[key].detach().numpy(), rtol=1e-12, atol=1e-13,
                                       err_msg=f"{name} step {step} {key}")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_frozen_layer_in_a_hand_written_loop(name):
    """A layer whose backward is never called (frozen) stays put across steps once gradients are cleared."""
    rng = np.random.default_rng(3)
    frozen, head = nn.Conv2d(2, 2, 1, rng=0, dtype=np.float64), nn.Conv2d(2, 3, 1, rng=1, dtype=np.float64)
    params = frozen.parameters() + head.parameters()
    opt = OPTIMIZERS[name][0](params)
    for p in params:                                   # an earlier step had left gradients everywhere
        p.grad = rng.standard_normal(p.shape)
    opt.step()
    frozen_before = _snapshot(frozen)
    for _ in range(4):
        opt.zero_grad()
        y = head.forward(frozen.forward(rng.standard_normal((1, 2, 3, 3))))
        head.backward(np.ones_like(y))                 # frozen.backward is not called
        opt.step()
        for p, before in zip(frozen.parameters(), frozen_before):
            np.testing.assert_array_equal(p.data, before)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_without_clearing_the_old_gradient_would_be_applied_again(name):
    """What zero_grad prevents: a gradient left in place is used again by the next step."""
    p = nn.Parameter(np.ones(3))
    opt = OPTIMIZERS[name][0]([p])
    p.grad = np.full(3, 0.5)
    opt.step()
    after_one = p.data.copy()
    opt.step()                                         # no backward in between: the stale grad is applied
    assert (p.data < after_one).all()
    opt.zero_grad()
    assert p.grad is None
    after_two = p.data.copy()
    opt.step()
    np.testing.assert_array_equal(p.data, after_two)   # skipped


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_none_is_skipped_but_zero_still_moves_like_torch(name):
    """grad None: untouched (state too). grad 0: momentum / Adam moments still move it, as in PyTorch."""
    torch = torch_or_skip()
    make_ours, make_theirs = OPTIMIZERS[name]
    for second in ("none", "zero"):
        p = nn.Parameter(np.ones(3))
        t = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt, topt = make_ours([p]), make_theirs(torch, [t])
        p.grad, t.grad = np.full(3, 0.5), torch.full((3,), 0.5, dtype=torch.float64)
        opt.step()
        topt.step()
        after_one = p.data.copy()
        state_before = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in opt.state[0].items()}
        if second == "none":
            p.grad, t.grad = None, None
        else:
            p.grad, t.grad = np.zeros(3), torch.zeros(3, dtype=torch.float64)
        opt.step()
        topt.step()
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13, atol=1e-15)
        if second == "none":
            np.testing.assert_array_equal(p.data, after_one)
            assert opt.state[0].keys() == state_before.keys()
            for k, v in state_before.items():
                np.testing.assert_array_equal(opt.state[0][k], v)   # momentum buffer / moments / step unchanged
        else:
            assert not np.array_equal(p.data, after_one)
