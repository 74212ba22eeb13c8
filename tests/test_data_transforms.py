"""Joint transforms: identical geometry for image and labels, nearest for labels, PyTorch's resize rules."""
import numpy as np
import pytest

from conftest import torch_or_skip
from minseg import data
from minseg.data import transforms as T


def _sample(C=2, H=9, W=12, K=4, seed=0):
    """An image whose channel 0 *is* the label map, so geometry can be compared pixel by pixel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, size=(H, W))
    labels[0, :3] = 255
    image = rng.random((C, H, W)).astype(np.float32)
    image[0] = labels
    instances = rng.integers(0, 5, size=(H, W)).astype(np.int32)
    return image, labels, instances


def test_bilinear_matrix_by_hand():
    # 2 -> 4, align_corners=False: src = (j + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25
    np.testing.assert_allclose(T.bilinear_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(T.bilinear_matrix(5, 5), np.eye(5))
    np.testing.assert_allclose(T.bilinear_matrix(7, 3).sum(1), 1.0)
    assert T.nearest_index(4, 2).tolist() == [1, 3]           # centres 1 and 3 of 0..3
    assert T.nearest_index(2, 4).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("size_in, size_out", [((5, 7), (11, 3)), ((8, 8), (16, 16)), ((9, 6), (4, 5)), ((1, 3), (2, 1))])
def test_resize_matches_pytorch(size_in, size_out):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = np.random.default_rng(1).random((3,) + size_in)
    ref = F.interpolate(torch.from_numpy(x)[None], size=size_out, mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(T.resize_bilinear(x, size_out), ref.numpy(), rtol=1e-12, atol=1e-12)
    ref = F.interpolate(torch.from_numpy(x)[None], size=size_out, mode="nearest-exact")[0]
    np.testing.assert_array_equal(T.resize_nearest(x, size_out), ref.numpy())


def test_resize_keeps_dtypes_and_label_values():
    labels = np.array([[0, 3], [255, 1]], dtype=np.int64)
    out = T.resize_nearest(labels, (5, 7))
    assert out.dtype == np.int64 and set(np.unique(out)) == {0, 1, 3, 255}
    assert T.resize_bilinear(np.zeros((2, 3), np.float32), 4).dtype == np.float32
    assert T.resize_bilinear(np.zeros((2, 3), np.uint8), 4).dtype == np.float32
    with pytest.raises(ValueError, match=r"resize_bilinear: expected image of shape \(C, H, W\) or \(H, W\), got shape \(1, 1, 2, 2\)"):
        T.resize_bilinear(np.zeros((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match="resize_nearest: expected size >= 1, got"):
        T.resize_nearest(labels, (0, 3))
    with pytest.raises(TypeError, match="resize_nearest: expected size to be an int or a pair"):
        T.resize_nearest(labels, 2.5)


def test_random_crop_cuts_the_same_window():
    image, labels, instances = _sample()
    rng = np.random.default_rng(0)
    im, lab, inst = data.RandomCrop((5, 6))(image, labels, instances, rng=rng)
    assert im.shape == (2, 5, 6) and lab.shape == inst.shape == (5, 6)
    np.testing.assert_array_equal(im[0], lab)
    # find the window and check the instances came from the same place
    hits = [(t, l) for t in range(9 - 5 + 1) for l in range(12 - 6 + 1)
            if np.array_equal(image[:, t:t + 5, l:l + 6], im)]
    t, l = hits[0]
    np.testing.assert_array_equal(inst, instances[t:t + 5, l:l + 6])


def test_random_crop_pads_with_ignore():
    image, labels, instances = _sample(H=4, W=5)
    im, lab, inst = data.RandomCrop(6)(image, labels, instances, rng=np.random.default_rng(0))
    assert im.shape == (2, 6, 6)
    assert np.all(lab[4:] == 255) and np.all(lab[:, 5:] == 255)
    assert np.all(im[:, 4:] == 0) and np.all(inst[4:] == 0)
    np.testing.assert_array_equal(lab[:4, :5], labels)
    im, lab, _ = data.CenterCrop((2, 3))(image, labels, None)
    np.testing.assert_array_equal(lab, labels[1:3, 1:4])


def test_random_flip_flips_all_three_or_none():
    image, labels, instances = _sample()
    flipped = data.RandomFlip(p=1.0)(image, labels, instances, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(flipped[0], image[:, :, ::-1])
    np.testing.assert_array_equal(flipped[1], labels[:, ::-1])
    np.testing.assert_array_equal(flipped[2], instances[:, ::-1])
    kept = data.RandomFlip(p=0.0)(image, labels, instances, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(kept[1], labels)
    up = data.RandomFlip(p=1.0, vertical=True)(image, labels, None, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(up[1], labels[::-1])
    assert up[2] is None
    rng = np.random.default_rng(5)
    outcomes = [data.RandomFlip()(image, labels, rng=rng)[1][0, 0] == labels[0, -1] for _ in range(400)]
    assert 0.4 < np.mean(outcomes) < 0.6


def test_random_scale_bilinear_image_nearest_labels():
    image, labels, instances = _sample()
    rng = np.random.default_rng(2)
    im, lab, inst = data.RandomScale((1.5, 2.0))(image, labels, instances, rng=rng)
    s = np.random.default_rng(2).uniform(1.5, 2.0)
    size = (round(9 * s), round(12 * s))
    assert lab.shape == size and im.shape == (2,) + size
    np.testing.assert_array_equal(lab, T.resize_nearest(labels, size))     # never interpolated
    np.testing.assert_array_equal(inst, T.resize_nearest(instances, size))
    np.testing.assert_allclose(im, T.resize_bilinear(image, size), rtol=1e-6)
    assert set(np.unique(lab)) <= set(np.unique(labels))


def test_compose_and_normalize_are_deterministic_with_a_seed():
    image, labels, instances = _sample(C=3, H=20, W=20)
    pipeline = data.Compose([data.RandomScale((0.7, 1.4)), data.RandomCrop(16), data.RandomFlip(),
                             data.Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    a = pipeline(image, labels, instances, rng=np.random.default_rng(7))
    b = pipeline(image, labels, instances, rng=np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape == (3, 16, 16) and a[0].dtype == np.float32
    im, lab, _ = data.Normalize(0.5, 2.0)(image, labels)
    np.testing.assert_allclose(im, (image - 0.5) / 2.0, rtol=1e-6)
    mean, std = data.channel_stats(image[None])
    np.testing.assert_allclose(mean, image.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std, image.std(axis=(1, 2)), rtol=1e-5)
    assert "RandomCrop(size=(16, 16)" in repr(pipeline)


def test_fit_to_square_scales_the_longer_side_and_pads_with_ignore():
    image = np.full((3, 20, 40), 200, dtype=np.uint8)
    labels = np.full((20, 40), 7, dtype=np.uint8)
    im, lab, inst = T.fit_to_square(image, labels, np.ones((20, 40), np.uint16), 20)
    assert im.shape == (3, 20, 20) and im.dtype == np.uint8
    assert np.all(lab[:10] == 7) and np.all(lab[10:] == 255)
    assert np.all(im[:, :10] == 200) and np.all(im[:, 10:] == 0) and np.all(inst[10:] == 0)


def test_transform_errors():
    image, labels, instances = _sample()
    with pytest.raises(TypeError, match="RandomCrop: expected rng to be a numpy.random.Generator"):
        data.RandomCrop(4)(image, labels, instances, rng=0)
    with pytest.raises(ValueError, match=r"RandomFlip: expected labels of shape \(9, 12\)"):
        data.RandomFlip()(image, labels[:3], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"RandomScale: expected image of shape \(C, H, W\), got shape \(9, 12\)"):
        data.RandomScale()(labels, labels, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="RandomScale: expected 0 < low <= high"):
        data.RandomScale((1.5, 1.0))
    with pytest.raises(ValueError, match="RandomFlip: expected p in"):
        data.RandomFlip(p=2)
    with pytest.raises(ValueError, match="Normalize: expected std > 0"):
        data.Normalize(0.0, [1.0, 0.0])
    with pytest.raises(ValueError, match=r"Normalize: expected mean with 1 or 2 entries \(the image's C\), got 3"):
        data.Normalize([0, 0, 0], 1.0)(image, labels)
    with pytest.raises(TypeError, match="Compose: expected callable transforms"):
        data.Compose([3])
