"""minseg.nn: batch-norm op and layer against PyTorch, layers' gradients, Module state, modes and errors."""
import numpy as np
import pytest

import minseg.nn as nn
from minseg.gradcheck import check_backward, numerical_gradient, rel_error
from minseg.ops.normalization import batch_norm2d, batch_norm2d_backward

from conftest import torch_or_skip


def _rand(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def check_layer(layer, x, seed=0, rtol=1e-5, atol=1e-7):
    """Gradient-check a layer (float64): dL/dx and dL/dp for every parameter, L = sum(layer(x) * dy)."""
    x = x.copy()
    y = layer.forward(x)
    dy = _rand(y.shape, seed + 100)
    dx = layer.backward(dy)
    analytic = {"x": dx, **{n: p.grad.copy() for n, p in layer.named_parameters()}}
    f = lambda _: layer.forward(x)  # noqa: E731  (reads x and the parameters fresh)
    numeric = {"x": numerical_gradient(f, x, dy)}
    for n, p in layer.named_parameters():
        numeric[n] = numerical_gradient(f, p.data, dy)
    for k in analytic:
        err = np.abs(analytic[k] - numeric[k])
        assert np.all(err <= atol + rtol * np.abs(numeric[k])), (k, err.max())


# --------------------------------------------------------------------------- batch norm op

@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_op_gradcheck_train(affine, xp):
    x = xp.asarray(_rand((3, 4, 5, 2)) * 3 + 1)
    inputs = {"x": x, "gamma": xp.asarray(_rand(4, 1)), "beta": xp.asarray(_rand(4, 2))} if affine else {"x": x}
    assert check_backward(batch_norm2d, batch_norm2d_backward, inputs, training=True).passed


def test_batch_norm_op_gradcheck_eval():
    rm, rv = _rand(4, 3), np.abs(_rand(4, 4)) + 0.5
    report = check_backward(batch_norm2d, batch_norm2d_backward,
                            {"x": _rand((2, 4, 3, 3)), "gamma": _rand(4, 1), "beta": _rand(4, 2)},
                            running_mean=rm, running_var=rv, training=False)
    assert report.passed


def test_batch_norm_layer_matches_torch_train_and_eval():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    bn.weight.data[:] = rng.standard_normal(3)
    bn.bias.data[:] = rng.standard_normal(3)
    tbn = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(bn.weight.data))
        tbn.bias.copy_(torch.from_numpy(bn.bias.data))
    for step in range(3):  # running statistics follow over several batches
        x = rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step
        dy = rng.standard_normal(x.shape)
        y = bn.forward(x)
        dx = bn.backward(dy)
        tx = torch.from_numpy(x).requires_grad_(True)
        ty = tbn(tx)
        ty.backward(torch.from_numpy(dy))
        assert np.abs(y - ty.detach().numpy()).max() < 1e-12
        assert np.abs(dx - tx.grad.numpy()).max() < 1e-12
        assert np.abs(bn.weight.grad - tbn.weight.grad.numpy()).max() < 1e-12
        assert np.abs(bn.bias.grad - tbn.bias.grad.numpy()).max() < 1e-12
        tbn.weight.grad = tbn.bias.grad = None
        assert np.abs(bn.running_mean - tbn.running_mean.numpy()).max() < 1e-14
        assert np.abs(bn.running_var - tbn.running_var.numpy()).max() < 1e-14
    assert int(bn.num_batches_tracked) == 3
    bn.eval()
    tbn.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    y = bn.forward(x)
    dx = bn.backward(dy)
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = tbn(tx)
    ty.backward(torch.from_numpy(dy))
    assert np.abs(y - ty.detach().numpy()).max() < 1e-12
    assert np.abs(dx - tx.grad.numpy()).max() < 1e-12
    assert np.abs(bn.weight.grad - tbn.weight.grad.numpy()).max() < 1e-12
    running = bn.running_mean.copy()
    bn.forward(x)
    np.testing.assert_array_equal(bn.running_mean, running)  # eval mode leaves the statistics alone


# --------------------------------------------------------------------------- batch norm + ReLU, fused

def _unfused(x, gamma, beta, dy, **kw):
    from minseg.ops import relu, relu_backward

    y, cache = batch_norm2d(x, gamma, beta, **kw)
    r, rcache = relu(y)
    return r, batch_norm2d_backward(relu_backward(dy, rcache), cache)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_relu_is_relu_of_batch_norm_bit_for_bit(dtype, training, affine):
    """The fused op gives exactly the numbers of the two ops in a row, NaN and inf included."""
    from minseg.ops import batch_norm_relu2d, batch_norm_relu2d_backward

    x = _rand((3, 4, 5, 6), 1, dtype) * 2 + 0.3
    x[0, 1, 2, 3] = np.nan                         # a NaN input: its channel's statistics are NaN
    dy = _rand(x.shape, 2, dtype)
    gamma, beta = (_rand(4, 3, dtype), _rand(4, 4, dtype)) if affine else (None, None)
    kw = {} if training else dict(running_mean=_rand(4, 5, dtype), running_var=np.abs(_rand(4, 6, dtype)) + 0.5)
    y, cache = batch_norm_relu2d(x, gamma, beta, training=training, **kw)
    grads = batch_norm_relu2d_backward(dy.copy(), cache)
    want_y, want_grads = _unfused(x, gamma, beta, dy, training=training, **kw)
    np.testing.assert_array_equal(y, want_y)
    assert y.dtype == dtype
    for got, want in zip(grads, want_grads):
        if want is None:
            assert got is None
        else:
            np.testing.assert_array_equal(got, want)
            assert got.dtype == dtype


def test_batch_norm_relu_gradcheck():
    from minseg.ops import batch_norm_relu2d, batch_norm_relu2d_backward

    inputs = {"x": _rand((3, 4, 5, 2)) * 3 + 1, "gamma": _rand(4, 1), "beta": _rand(4, 2)}
    assert check_backward(batch_norm_relu2d, batch_norm_relu2d_backward, inputs, training=True).passed


def test_batch_norm_relu_backward_leaves_dy_alone():
    from minseg.ops import batch_norm_relu2d, batch_norm_relu2d_backward

    x, dy = _rand((2, 3, 4, 4), 1), _rand((2, 3, 4, 4), 2)
    _, cache = batch_norm_relu2d(x, _rand(3, 3), _rand(3, 4))
    before = dy.copy()
    batch_norm_relu2d_backward(dy, cache)
    np.testing.assert_array_equal(dy, before)
    with pytest.raises(ValueError, match=r"batch_norm_relu2d_backward: expected dy of shape \(2, 3, 4, 4\)"):
        batch_norm_relu2d_backward(dy[:, :2], cache)


@pytest.mark.parametrize("training", [True, False])
def test_conv_bn_relu_block_equals_its_children_one_by_one(training):
    """``ConvBNReLU`` runs batch norm + ReLU fused: outputs, gradients and running statistics as unfused."""
    from minseg.nn.blocks import ConvBNReLU

    fused = ConvBNReLU(3, 5, rng=np.random.default_rng(0), dtype=np.float32)
    plain = ConvBNReLU(3, 5, rng=np.random.default_rng(0), dtype=np.float32)
    fused.train(training)
    plain.train(training)
    for step in range(2):
        x, dy = _rand((2, 3, 6, 7), step, np.float32), _rand((2, 5, 6, 7), step + 10, np.float32)
        y = fused.forward(x)
        dx = fused.backward(dy)
        h = x
        for child in plain._children.values():
            h = child.forward(h)
        d = dy
        for child in reversed(list(plain._children.values())):
            d = child.backward(d)
        np.testing.assert_array_equal(y, h)
        np.testing.assert_array_equal(dx, d)
        for (name, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
        for (name, a), (_, b) in zip(fused.named_buffers(), plain.named_buffers()):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        batch_norm2d(np.ones((1, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"expected gamma of shape \(2,\)"):
        batch_norm2d(np.ones((2, 2, 2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="expected running_mean and running_var in evaluation mode"):
        batch_norm2d(np.ones((2, 2, 2, 2)), training=False)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected x with 3 channels"):
        nn.BatchNorm2d(3).forward(np.ones((2, 2, 2, 2), np.float32))


# --------------------------------------------------------------------------- layers

def test_conv2d_layer_matches_torch_and_he_init():
    torch = torch_or_skip()
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2, rng=0, dtype=np.float64)
    assert conv.weight.shape == (6, 2, 3, 3) and conv.num_parameters() == 6 * 2 * 9 + 6
    x = _rand((2, 4, 7, 6))
    y = conv.forward(x)
    ty = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(conv.weight.data),
                                    torch.from_numpy(conv.bias.data), stride=2, padding=1, groups=2)
    assert rel_error(y, ty.numpy()) < 1e-10
    big = nn.Conv2d(64, 256, 3, rng=1)
    assert big.weight.dtype == np.float32 and big.bias.dtype == np.float32
    assert big.weight.data.std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.02)
    np.testing.assert_array_equal(nn.Conv2d(3, 4, 3, rng=5).weight.data, nn.Conv2d(3, 4, 3, rng=5).weight.data)


def test_layer_gradients():
    check_layer(nn.Conv2d(3, 4, 3, padding=1, rng=0, dtype=np.float64), _rand((2, 3, 5, 4)))
    check_layer(nn.Linear(6, 3, rng=0, dtype=np.float64), _rand((4, 6)))
    check_layer(nn.SeparableConv2d(3, 5, 3, padding=2, dilation=2, rng=0, dtype=np.float64), _rand((1, 3, 6, 5)))
    check_layer(nn.BatchNorm2d(3, dtype=np.float64), _rand((2, 3, 4, 4)))
    check_layer(nn.Sequential(nn.Conv2d(2, 3, 3, rng=1, dtype=np.float64), nn.Flatten(),
                              nn.Linear(3 * 3 * 2, 4, rng=2, dtype=np.float64)), _rand((2, 2, 5, 4)))
    block = nn.ConvBNReLU(2, 3, rng=0, dtype=np.float64)
    check_layer(block, _rand((2, 2, 5, 5)))
    assert block[0].bias is None and len(block) == 3


def test_separable_conv_parameter_count():
    sep = nn.SeparableConv2d(64, 128, 3, padding=1, bias=False)
    full = nn.Conv2d(64, 128, 3, padding=1, bias=False)
    assert sep.num_parameters() == 64 * 9 + 64 * 128
    assert full.num_parameters() == 64 * 128 * 9
    assert sep.num_parameters() / full.num_parameters() == pytest.approx(1 / 128 + 1 / 9)


def test_relu_dropout_identity_layers():
    x = _rand((2, 3, 4, 4))
    r = nn.ReLU()
    np.testing.assert_array_equal(r.forward(x), np.maximum(x, 0))
    np.testing.assert_array_equal(r.backward(np.ones_like(x)), (x > 0).astype(float))
    d = nn.Dropout(0.5, rng=0)
    y = d.forward(x)
    assert np.any(y == 0) and np.allclose(y[y != 0], 2 * x[y != 0])
    np.testing.assert_array_equal(d.backward(np.ones_like(x)) != 0, y != 0)
    d.eval()
    assert d.forward(x) is x
    assert nn.Identity().forward(x) is x


# --------------------------------------------------------------------------- Module machinery

def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 2, 1, rng=1))


def test_named_parameters_counts_and_repr():
    net = _net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert net.num_parameters() == 4 * 3 * 9 + 4 + 4 + 4 + 4 * 2 + 2
    assert set(net.state_dict()) == set(names) | {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert "BatchNorm2d(4" in repr(net) and "(3): Conv2d(4, 2" in repr(net)
    assert net[1].params.keys() == {"weight", "bias"}


def test_train_eval_propagate():
    net = _net()
    assert all(m.training for _, m in net.named_modules())
    assert net.eval() is net and not any(m.training for _, m in net.named_modules())
    net.train()
    assert net[1].training


def test_backward_overwrites_grads_and_zero_grad():
    net = _net()
    x = _rand((2, 3, 5, 5), dtype=np.float32)
    y = net.forward(x)
    net.backward(np.ones_like(y))
    g1 = net[0].weight.grad.copy()
    net.forward(x)
    net.backward(np.ones_like(y))
    np.testing.assert_allclose(net[0].weight.grad, g1, rtol=1e-5)  # overwritten, not doubled
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_and_copies():
    a, b = _net(), nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=7), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Conv2d(4, 2, 1, rng=8))
    a.forward(_rand((2, 3, 5, 5), dtype=np.float32))  # moves the running statistics
    sd = a.state_dict()
    sd["0.weight"][...] = 0  # a copy: the model is untouched
    assert np.any(a[0].weight.data != 0)
    w_obj = b[0].weight.data
    b.load_state_dict(a.state_dict())
    assert b[0].weight.data is w_obj  # copied in place: optimiser references stay valid
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v)
    x = _rand((1, 3, 6, 6), 3, np.float32)
    np.testing.assert_array_equal(a.eval().forward(x), b.eval().forward(x))


def test_load_state_dict_errors_change_nothing():
    net = _net()
    before = net.state_dict()
    good = _net().state_dict()
    good["0.weight"] = good["0.weight"] + 1
    missing = dict(good)
    del missing["3.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['3.bias'\]"):
        net.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['extra'\]"):
        net.load_state_dict({**good, "extra": np.zeros(1)})
    bad = dict(good)
    bad["3.weight"] = np.zeros((2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"expected '3.weight' of shape \(2, 4, 1, 1\), got shape \(2, 4, 3, 3\)"):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    result = net.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["3.bias"] and result.unexpected_keys == []
    np.testing.assert_array_equal(net[0].weight.data, good["0.weight"])


def test_astype_float64_keeps_counters():
    net = _net().astype(np.float64)
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net[1].running_var.dtype == np.float64 and net[1].num_batches_tracked.dtype == np.int64
    assert net.forward(_rand((2, 3, 4, 4))).dtype == np.float64


def test_module_requires_super_init_and_sequential_type_check():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(AttributeError, match="call super"):
        Bad()
    with pytest.raises(TypeError, match="Sequential: expected Module instances"):
        nn.Sequential(nn.ReLU(), np.zeros(3))


# --------------------------------------------------------------------------- upsampling layers

def test_conv_transpose_layer_matches_torch_and_gradients():
    torch = torch_or_skip()
    ct = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, rng=0, dtype=np.float64)
    assert ct.weight.shape == (4, 3, 3, 3)
    x = _rand((2, 4, 5, 4))
    y = ct.forward(x, output_size=(10, 8))  # output_padding = 1 picks the even size
    ty = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(ct.weight.data),
                                              torch.from_numpy(ct.bias.data), stride=2, padding=1,
                                              output_padding=1, groups=2)
    assert y.shape == (2, 6, 10, 8) and rel_error(y, ty.numpy()) < 1e-10
    assert ct.forward(x).shape == (2, 6, 9, 7)
    check_layer(nn.ConvTranspose2d(3, 2, 2, stride=2, rng=1, dtype=np.float64), _rand((2, 3, 3, 4)))


def test_conv_transpose_bilinear_init_upsamples_and_can_be_fixed():
    up = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1, bias=False, init="bilinear", trainable=False,
                            dtype=np.float64)
    assert up.num_parameters() == 0 and "weight_fixed" in up.state_dict()
    x = np.ones((1, 2, 4, 4))
    y = up.forward(x)
    assert y.shape == (1, 2, 8, 8)
    np.testing.assert_allclose(y[:, :, 1:-1, 1:-1], 1)  # a constant stays constant away from the border
    assert up.weight_fixed[0, 1].max() == 0  # no mixing between channels
    up.backward(np.ones_like(y))
    with pytest.raises(ValueError, match="expected in_channels == out_channels for init='bilinear'"):
        nn.ConvTranspose2d(2, 3, 4, stride=2, init="bilinear")


def test_max_pool_exposes_switches_and_unpool_uses_them():
    torch = torch_or_skip()
    pool, unpool = nn.MaxPool2d(2), nn.MaxUnpool2d(2)
    x = _rand((2, 3, 7, 5))
    y = pool.forward(x)
    ty, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(pool.indices, tidx.numpy())
    assert pool.input_size == (7, 5)
    u = unpool.forward(y, pool.indices, output_size=pool.input_size)
    tu = torch.nn.functional.max_unpool2d(ty, tidx, 2, output_size=(7, 5))
    np.testing.assert_array_equal(u, tu.numpy())
    check_layer(nn.MaxPool2d(3, stride=2, padding=1), _rand((1, 2, 6, 5)))
    dy = _rand(u.shape, 3)
    np.testing.assert_array_equal(unpool.backward(dy), np.take_along_axis(
        dy.reshape(2, 3, -1), pool.indices.reshape(2, 3, -1), axis=2).reshape(y.shape))


def test_upsample_and_global_pool_layers():
    torch = torch_or_skip()
    x = _rand((2, 3, 5, 4))
    for kw in (dict(size=(9, 7)), dict(scale_factor=2)):
        up = nn.Upsample(**kw)
        ty = torch.nn.functional.interpolate(torch.from_numpy(x), mode="bilinear", align_corners=False, **kw)
        assert rel_error(up.forward(x), ty.numpy()) < 1e-12
        check_layer(up, x)
    assert nn.Upsample().forward(x, size=(3, 3)).shape == (2, 3, 3, 3)
    gap = nn.GlobalAvgPool2d()
    np.testing.assert_allclose(gap.forward(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-13)
    check_layer(gap, x)


def test_conv_bn_relu_block_with_a_swapped_child_runs_that_child():
    """Swap the ReLU for another layer and the block no longer fuses: the new layer runs, both ways."""
    from minseg.nn.blocks import ConvBNReLU
    from minseg.nn.module import Module

    class Halve(Module):
        def forward(self, x):
            return x / 2

        def backward(self, dy):
            return dy / 2

    block = ConvBNReLU(2, 3, rng=np.random.default_rng(0), dtype=np.float64)
    x, dy = _rand((2, 2, 5, 5), 1), _rand((2, 3, 5, 5), 2)
    setattr(block, "2", Halve())
    y = block.forward(x)
    conv, bn = block._children["0"], block._children["1"]
    np.testing.assert_array_equal(y, bn.forward(conv.forward(x)) / 2)
    np.testing.assert_array_equal(block.backward(dy), conv.backward(bn.backward(dy / 2)))
