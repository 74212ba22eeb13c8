"""shapes: output-size formulas against PyTorch, receptive field, argument normalisation."""
import itertools

import numpy as np
import pytest

from minseg import shapes


def test_pair():
    assert shapes.pair(3) == (3, 3)
    assert shapes.pair((1, 2)) == (1, 2)
    assert shapes.pair([4, 5]) == (4, 5)
    for bad in [1.5, (1, 2, 3), "3", (1, 2.0), True]:
        with pytest.raises(TypeError, match="expected k to be an int or a pair of ints"):
            shapes.pair(bad, "k", "op")


def test_conv_output_size_formula_by_hand():
    # (H + 2p - d(k-1) - 1) // s + 1
    assert shapes.conv_output_size(32, 3, 1, 1, 1) == 32
    assert shapes.conv_output_size(7, 3, 2, 1, 1) == 4
    assert shapes.conv_output_size(9, 3, 1, 2, 2) == 9
    assert shapes.conv_output_size(5, 3, 1, 0, 3) == -1  # does not fit


def test_output_sizes_match_torch():
    torch = pytest.importorskip("torch")
    for H, k, s, p, d in itertools.product([5, 8], [1, 3], [1, 2, 3], [0, 1], [1, 2]):
        if shapes.conv_output_size(H, k, s, p, d) < 1 or 2 * p > k:
            continue
        x = torch.zeros(1, 1, H, H)
        assert torch.nn.functional.conv2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p,
                                          dilation=d).shape[-1] == shapes.conv_output_size(H, k, s, p, d)
        for op in range(max(s, d)):
            want = torch.nn.functional.conv_transpose2d(x, torch.zeros(1, 1, k, k), stride=s, padding=p,
                                                        output_padding=op, dilation=d).shape[-1]
            assert want == shapes.conv_transpose_output_size(H, k, s, p, op, d)
        for ceil in (False, True):
            want = torch.nn.functional.max_pool2d(x, k, s, p, d, ceil_mode=ceil).shape[-1]
            assert want == shapes.pool_output_size(H, k, s, p, d, ceil)


def test_unpool_output_size():
    assert shapes.unpool_output_size(4, 2, 2) == 8
    assert shapes.unpool_output_size(3, 3, 2, 1) == 5


def test_receptive_field():
    assert shapes.receptive_field([(3, 1, 1)] * 2) == 5
    assert shapes.receptive_field([(3, 1, 2)]) == 5
    assert shapes.receptive_field([(3, 1, 1), (2, 2, 1), (3, 1, 1)]) == 8
    # atrous rates 1, 2, 4: the receptive field grows exponentially with depth, parameters linearly
    assert shapes.receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15


def test_checks_name_the_argument():
    with pytest.raises(ValueError, match=r"op: expected x of shape \(N, C, H, W\), got shape \(2, 3\)"):
        shapes.check_ndim(np.zeros((2, 3)), 4, "x", "op", "N, C, H, W")
    with pytest.raises(TypeError, match="op: expected x with a floating dtype .* got dtype int32"):
        shapes.check_float(np.zeros(2, np.int32), "x", "op")
    with pytest.raises(ValueError, match=r"op: expected stride >= 1, got \(0, 1\)"):
        shapes.check_positive((0, 1), "stride", "op")
