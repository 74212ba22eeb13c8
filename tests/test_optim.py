"""SGD, Adam and the poly schedule, step for step against torch.optim (float64)."""
import numpy as np
import pytest

import minseg.nn as nn
from minseg.optim import SGD, Adam, PolyLR, poly_lr

from conftest import torch_or_skip


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal((3, 4))), nn.Parameter(rng.standard_normal(5))]


def _run_both(make_ours, make_torch, steps=6, seed=0):
    torch = torch_or_skip()
    ours = _params(seed)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt, topt = make_ours(ours), make_torch(theirs)
    rng = np.random.default_rng(seed + 1)
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        assert np.abs(p.data - t.detach().numpy()).max() < 1e-13
    return opt


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, weight_decay=1e-2),
                                dict(momentum=0.8, dampening=0.3, weight_decay=1e-3),
                                dict(momentum=0.9, nesterov=True, weight_decay=1e-2)])
def test_sgd_matches_torch(kw):
    torch = torch_or_skip()
    _run_both(lambda ps: SGD(ps, lr=0.1, **kw), lambda ps: torch.optim.SGD(ps, lr=0.1, **kw))


@pytest.mark.parametrize("kw", [dict(), dict(weight_decay=1e-2), dict(betas=(0.8, 0.99), eps=1e-6)])
def test_adam_matches_torch(kw):
    torch = torch_or_skip()
    _run_both(lambda ps: Adam(ps, lr=0.01, **kw), lambda ps: torch.optim.Adam(ps, lr=0.01, **kw))


def test_poly_schedule_matches_torch():
    torch = torch_or_skip()
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.5)
    tsched = torch.optim.lr_scheduler.PolynomialLR(topt, total_iters=10, power=0.9)
    opt = SGD(_params(), lr=0.5)
    sched = PolyLR(opt, max_steps=10, power=0.9)
    for _ in range(12):
        topt.step()
        tsched.step()
        sched.step()
        assert opt.lr == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
    assert opt.lr == 0.0
    assert poly_lr(1.0, 5, 10, 1.0) == 0.5


def test_skips_parameters_without_grad_and_keeps_float32():
    ps = [nn.Parameter(np.ones(3, np.float32)), nn.Parameter(np.ones(2, np.float32))]
    ps[0].grad = np.ones(3, np.float32)
    for opt in (SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4), Adam(ps, lr=0.1)):
        opt.step()
    assert ps[0].data.dtype == np.float32 and np.all(ps[0].data < 1)
    np.testing.assert_array_equal(ps[1].data, 1)


def test_takes_a_module_or_named_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 1, rng=0))
    assert len(SGD(net, lr=0.1).params) == 2
    assert len(Adam(net.named_parameters()).params) == 2


def test_state_dict_resumes_identically():
    a, b = _params(), _params()
    oa, ob = Adam(a, lr=0.01), Adam(b, lr=0.01)
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(p.shape) for p in a] for _ in range(4)]
    for gs in grads[:2]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g, g.copy()
        oa.step()
        ob.step()
    fresh = Adam(b, lr=0.5)
    fresh.load_state_dict(oa.state_dict())
    assert fresh.lr == 0.01 and fresh.steps == 2
    for gs in grads[2:]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g, g.copy()
        oa.step()
        fresh.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_errors():
    with pytest.raises(TypeError, match="SGD: expected Parameter objects"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="SGD: expected lr >= 0"):
        SGD(_params(), lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"Adam: expected betas in \[0, 1\)"):
        Adam(_params(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="PolyLR: expected max_steps"):
        PolyLR(SGD(_params(), lr=0.1), max_steps=0)
    ps = _params()
    ps[0].grad = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"SGD.step: expected a gradient of shape \(3, 4\)"):
        SGD(ps, lr=0.1).step()
