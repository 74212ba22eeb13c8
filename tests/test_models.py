"""Models: whole-model gradient checks on tiny instances, odd sizes, convolutionalization, transfer, registry."""
import numpy as np
import pytest

import minseg.models as models
from minseg.models import (FCN8s, FCN16s, FCN32s, DeepLab, PixelClassifier, SegNet, UNet, VGGClassifier,
                           build_model, convolutionalize)

F64 = dict(dtype=np.float64)
TINY_VGG = dict(widths=(4, 6, 8), convs=(1, 1, 1))  # 3 stages: pool3/4/5 taps at strides 2/4/8


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def model_gradcheck(model, x, n_entries=3, seed=0, rtol=1e-5, atol=1e-7):
    """Check model.backward against central differences of L = sum(model.forward(x) * dy).

    Every parameter tensor is checked at ``n_entries`` random entries, the input at
    ``2 * n_entries``; float64, training mode (BatchNorm uses the batch statistics,
    which the numerical derivative re-computes on every forward, as it should).
    """
    rng = np.random.default_rng(seed)
    x = x.copy()
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    assert dx.shape == x.shape
    loss = lambda: float((model.forward(x) * dy).sum())  # noqa: E731
    eps = 1e-6
    checks = [("x", x, dx, 2 * n_entries)] + [(n, p.data, p.grad, n_entries) for n, p in model.named_parameters()]
    failures = []
    for name, arr, grad, k in checks:
        assert grad is not None and grad.shape == arr.shape, name
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        for i in rng.choice(flat.size, size=min(k, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            plus = loss()
            flat[i] = old - eps
            minus = loss()
            flat[i] = old
            num = (plus - minus) / (2 * eps)
            if abs(gflat[i] - num) > atol + rtol * abs(num):
                failures.append((name, int(i), float(gflat[i]), num))
    assert not failures, failures[:5]


# --------------------------------------------------------------------------- whole-model gradient checks

def test_pixel_classifier_gradcheck_and_is_per_pixel():
    m = PixelClassifier(3, in_channels=2, hidden=(5,), rng=0, **F64)
    model_gradcheck(m, _x((2, 2, 4, 3)))
    assert all(mod.kernel_size == (1, 1) for n, mod in m.named_modules() if type(mod).__name__ == "Conv2d")
    x = _x((1, 2, 5, 5))
    y1 = m.forward(x)
    x[:, :, 0, 0] += 1  # changing one pixel changes only that pixel's scores: no context
    y2 = m.forward(x)
    changed = np.abs(y2 - y1).sum(axis=(0, 1)) > 0
    assert changed[0, 0] and changed.sum() == 1


def test_vgg_classifier_gradcheck():
    m = VGGClassifier(4, in_channels=1, input_size=16, dropout=0.0, fc_channels=6, rng=0, **TINY_VGG, **F64)
    model_gradcheck(m, _x((2, 1, 16, 16)))


@pytest.mark.parametrize("cls", [FCN32s, FCN16s, FCN8s])
def test_fcn_gradcheck_odd_size(cls):
    m = cls(3, in_channels=3, fc_channels=6, rng=0, **TINY_VGG, **F64)
    x = _x((2, 3, 13, 11))
    assert m.forward(x).shape == (2, 3, 13, 11)
    model_gradcheck(m, x)


def test_segnet_gradcheck_odd_size():
    m = SegNet(3, in_channels=3, widths=(4, 6), convs=1, rng=0, **F64)
    x = _x((1, 3, 13, 11))
    assert m.forward(x).shape == (1, 3, 13, 11)
    model_gradcheck(m, x)


@pytest.mark.parametrize("separable", [False, True])
def test_deeplab_gradcheck_odd_size(separable):
    m = DeepLab(3, in_channels=3, widths=(4, 6, 8, 8), convs=1, output_stride=4, aspp_channels=4, rates=(1, 2),
                separable=separable, rng=0, **F64)
    x = _x((2, 3, 13, 11))
    assert m.forward(x).shape == (2, 3, 13, 11)
    model_gradcheck(m, x)


@pytest.mark.parametrize("shape", [(1, 3, 13, 11), (2, 3, 16, 16)])
def test_unet_gradcheck(shape):
    m = UNet(3, in_channels=3, base_width=4, depth=2, rng=0, **F64)
    assert m.forward(_x(shape)).shape == (shape[0], 3) + shape[2:]
    model_gradcheck(m, _x(shape))


# --------------------------------------------------------------------------- architecture properties

@pytest.mark.parametrize("H, W", [(1, 1), (7, 9), (8, 15), (17, 31), (32, 32)])
def test_any_input_size(H, W):
    x = _x((1, 3, H, W)).astype(np.float32)
    ms = [FCN8s(3, rng=0, **TINY_VGG)]  # pads to a multiple of its stride: any size at all
    if min(H, W) >= 8:  # the others pool 3 times without padding: 8 pixels at least
        ms += [UNet(3, base_width=4, depth=3, rng=0), SegNet(3, widths=(4, 4, 4), convs=1, rng=0),
               DeepLab(3, widths=(4, 6, 8), convs=1, aspp_channels=4, rng=0)]
    for m in ms:  # evaluation mode: a 1-pixel feature map has no batch variance in training mode
        assert m.eval().forward(x).shape == (1, 3, H, W), (type(m).__name__, H, W)


def test_unet_width_and_depth():
    m = UNet(5, base_width=8, depth=4)
    assert [n for n, _ in m.named_children()][:4] == ["pool", "enc", "up", "dec"]
    assert len(m.enc) == m.config["depth"] + 1 and len(m.pool) == len(m.up) == len(m.dec) == m.config["depth"]
    assert m.enc[4][0][0].out_channels == 128 and m.up[0].out_channels == 8
    assert m.forward(_x((2, 3, 21, 19)).astype(np.float32)).shape == (2, 5, 21, 19)


def test_convolutionalize_equals_classifier_numerically():
    clf = VGGClassifier(4, in_channels=1, input_size=24, fc_channels=6, rng=0, **TINY_VGG, **F64)
    x = _x((3, 1, 24, 24))
    clf.forward(x)  # move the BatchNorm statistics away from their initial values
    clf.eval()
    fc = convolutionalize(clf).eval()
    assert fc.head[0].kernel_size == (3, 3)  # fc6 over a 3x3 map became a 3x3 convolution
    assert fc.num_parameters() == clf.num_parameters()
    scores = fc.forward(x)
    assert scores.shape == (3, 4, 1, 1)
    np.testing.assert_allclose(scores[:, :, 0, 0], clf.forward(x), rtol=1e-12, atol=1e-12)
    # on a larger image: a score map; each score is the FC head applied to one 3x3 window of the features
    big = _x((1, 1, 40, 32), 1)
    smap = fc.forward(big)
    assert smap.shape == (1, 4, 3, 2)
    feats = clf.backbone.forward(big)  # (1, 8, 5, 4)
    for i in range(3):
        for j in range(2):
            window = np.ascontiguousarray(feats[:, :, i:i + 3, j:j + 3])
            np.testing.assert_allclose(smap[:, :, i, j], clf.head.forward(window), rtol=1e-10, atol=1e-12)


def test_fcn_transfer_from_classifier():
    clf = VGGClassifier(10, in_channels=1, input_size=8, fc_channels=6, rng=1, **TINY_VGG)
    fcn = FCN8s(3, in_channels=1, fc_channels=6, fc_kernel=1, rng=2, **TINY_VGG)
    fcn.load_pretrained(clf)
    for k, v in clf.backbone.state_dict().items():
        np.testing.assert_array_equal(fcn.backbone.state_dict()[k], v)
    np.testing.assert_array_equal(fcn.fc6[0].weight.data.reshape(6, -1), clf.head[1].weight.data)
    np.testing.assert_array_equal(fcn.fc7[0].weight.data[:, :, 0, 0], clf.head[4].weight.data)
    with pytest.raises(ValueError, match="expected fc_kernel == the classifier's last feature-map size 3"):
        FCN8s(3, in_channels=1, fc_channels=6, **TINY_VGG).load_pretrained(
            VGGClassifier(10, in_channels=1, input_size=24, fc_channels=6, **TINY_VGG))
    with pytest.raises(ValueError, match="expected the classifier's widths"):
        FCN8s(3, in_channels=1, fc_channels=6, widths=(4, 6, 10), convs=1).load_pretrained(clf)
    deeplab = DeepLab(3, in_channels=1, output_stride=4, aspp_channels=4, **TINY_VGG).load_pretrained(clf)
    np.testing.assert_array_equal(deeplab.backbone.stages[2][0][0].weight.data, clf.backbone.stages[2][0][0].weight.data)


def test_fcn_upsampling_is_bilinear_and_final_one_fixed():
    m = FCN8s(3, rng=0, **TINY_VGG)
    names = {n for n, _ in m.named_parameters()}
    assert "up2.0.weight" in names and "up2.1.weight" in names
    assert not any(n.startswith("upsample.") for n in names)  # the 8x upsampling is fixed
    assert "upsample.weight_fixed" in m.state_dict()
    w = m.up2[0].weight.data
    assert np.all(w[0, 1] == 0) and np.allclose(w[0, 0], w[1, 1]) and w[0, 0].max() == pytest.approx(0.5625)


def test_fcn_variants_differ_only_by_skips():
    a, b, c = (cls(3, rng=0, **TINY_VGG) for cls in (FCN32s, FCN16s, FCN8s))
    assert a.num_parameters() < b.num_parameters() < c.num_parameters()
    assert c.final_stride == 2 and b.final_stride == 4 and a.final_stride == 8


def test_deeplab_separable_parameter_count_and_dilation():
    kw = dict(num_classes=5, aspp_channels=32, rates=(2, 4, 6))
    full, sep = DeepLab(**kw), DeepLab(separable=True, **kw)
    C, A = full.backbone.out_channels, 32
    # each 3x3 branch: C*A*9 weights -> C*9 (depthwise) + C*A (pointwise)
    assert full.num_parameters() - sep.num_parameters() == 3 * (C * A * 9 - (C * 9 + C * A))
    assert full.backbone.stride == 8 and full.backbone.dilations == [1, 1, 1, 1, 2]
    assert full.forward(np.zeros((2, 3, 24, 20), np.float32)).shape == (2, 5, 24, 20)


def test_segnet_decoder_uses_the_switches():
    m = SegNet(2, in_channels=1, widths=(3,), convs=1, rng=0, **F64)
    x = _x((1, 1, 6, 6))
    m.forward(x)
    unpooled = m.unpool[0].forward(m.pool[0].forward(m.enc[0].forward(x)), m.pool[0].indices, m.pool[0].input_size)
    nonzero = unpooled != 0
    assert nonzero.reshape(1, 3, 3, 2, 3, 2).sum(axis=(3, 5)).max() == 1  # one value per 2x2 window
    np.testing.assert_array_equal(unpooled[nonzero], m.enc[0].forward(x)[nonzero])


# --------------------------------------------------------------------------- registry and state

@pytest.mark.parametrize("name, config", [
    ("pixel", dict(num_classes=3, hidden=[4])),
    ("unet", dict(num_classes=3, base_width=4, depth=2)),
    ("fcn8s", dict(num_classes=3, **TINY_VGG)),
    ("segnet", dict(num_classes=3, widths=(4, 6), convs=1)),
    ("deeplab", dict(num_classes=3, widths=(4, 6, 8), convs=1, aspp_channels=4, rates=(1, 2))),
])
def test_rebuild_from_name_config_and_state(name, config):
    m = build_model(name, rng=3, **config)
    x = _x((2, 3, 16, 16)).astype(np.float32)
    m.forward(x)  # updates BatchNorm statistics
    assert m.name == name and m.dtype == np.float32
    again = build_model(m.name, rng=99, **m.config)
    again.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(again.eval().forward(x), m.eval().forward(x))
    assert m.predict(x).shape == (2, 16, 16) and not m.training
    m.train()
    m.predict(x)
    assert m.training  # predict restores the mode


def test_seed_determinism_and_float32_everywhere():
    a, b = UNet(3, base_width=4, depth=2, rng=5), UNet(3, base_width=4, depth=2, rng=5)
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    x = _x((2, 3, 12, 12)).astype(np.float32)
    y = a.forward(x)
    assert y.dtype == np.float32
    a.backward(np.ones_like(y))
    assert all(p.grad.dtype == np.float32 for p in a.parameters())


def test_registry_and_input_errors():
    assert {"pixel", "fcn32s", "fcn16s", "fcn8s", "segnet", "deeplab", "unet"} <= set(models.list_models())
    with pytest.raises(ValueError, match="build_model: expected a model name in"):
        build_model("resnet", num_classes=3)
    with pytest.raises(ValueError, match=r"UNet: expected x of shape \(N, 3, H, W\), got shape \(1, 1, 8, 8\)"):
        UNet(3).forward(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"VGGClassifier: expected x of shape \(N, 1, 32, 32\)"):
        VGGClassifier(10).forward(np.zeros((1, 1, 24, 24), np.float32))
    with pytest.raises(ValueError, match="expected an odd fc_kernel"):
        FCN8s(3, fc_kernel=2)
    with pytest.raises(ValueError, match="UNet: expected H and W >= 8"):
        UNet(3, depth=3).forward(np.zeros((2, 3, 7, 9), np.float32))
    with pytest.raises(ValueError, match="SegNet: expected H and W >= 4"):
        SegNet(3, widths=(4, 4)).forward(np.zeros((1, 3, 3, 8), np.float32))
