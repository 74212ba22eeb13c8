"""The synthetic sets: colour must not give the class away, the outline must; bands, digits, coins crops."""
import numpy as np
import pytest

from minseg import data
from minseg.data import photo, synthetic


@pytest.fixture(scope="module")
def shapes():
    return data.make_shapes(600, seed=[11, 0])


def _gaussian_classifier(x_train, y_train, x_test, classes):
    """Per-pixel quadratic discriminant on colour: one Gaussian (mean, covariance, prior) per class."""
    scores = []
    for k in classes:
        xk = x_train[y_train == k]
        mu, cov = xk.mean(0), np.cov(xk.T) + 1e-6 * np.eye(x_train.shape[1])
        d = x_test - mu
        maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
        scores.append(-0.5 * maha - 0.5 * np.linalg.slogdet(cov)[1] + np.log(np.mean(y_train == k)))
    return np.asarray(classes)[np.argmax(np.stack(scores, 1), 1)]


def test_shapes_colour_statistics_do_not_depend_on_class(shapes):
    images, labels, _ = shapes
    x = images.transpose(0, 2, 3, 1).reshape(-1, 3) / 255.0           # (N*H*W, 3) pixel colours
    y = labels.ravel()
    means = np.array([x[y == k].mean(0) for k in range(1, 5)])        # (4, 3) per shape class
    stds = np.array([x[y == k].std(0) for k in range(1, 5)])
    assert np.abs(means - means.mean(0)).max() < 0.05
    assert np.abs(stds - stds.mean(0)).max() < 0.03
    # the ground is darker: a per-pixel classifier may find *where* the shapes are, not *which*
    assert x[y == 0].mean() < means.mean() - 0.2


def test_a_per_pixel_colour_classifier_cannot_tell_the_shapes_apart(shapes):
    """The best per-pixel Gaussian model of colour is near chance (1/4) among the four shapes."""
    images, labels, _ = shapes
    x = images.transpose(0, 2, 3, 1).reshape(-1, 3) / 255.0
    y = labels.ravel()
    keep = (y >= 1) & (y <= 4)
    x, y = x[keep], y[keep]
    half = x.shape[0] // 2                                            # fit on the first images, test on the rest
    pred = _gaussian_classifier(x[:half], y[:half], x[half:], [1, 2, 3, 4])
    per_class = [np.mean(pred[y[half:] == k] == k) for k in range(1, 5)]
    assert np.mean(per_class) < 0.35


def test_the_outline_tells_the_shapes_apart(shapes):
    """Two outline features of each instance (its context) classify the shapes far above chance."""
    _, labels, instances = shapes
    feats, classes = [], []
    for lab, inst in zip(labels, instances):
        for i in range(1, int(inst.max()) + 1):
            yy, xx = np.nonzero(inst == i)
            if yy.size < 30:
                continue
            r2 = (yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2
            compactness = yy.size ** 2 / (2 * np.pi * r2.sum())        # 1 for a disc
            reach = np.sqrt(r2.max() / yy.size)                         # farthest pixel / sqrt(area)
            feats.append((compactness, reach))
            classes.append(lab[yy[0], xx[0]])
    f, c = np.array(feats), np.array(classes)
    half = len(f) // 2
    z = (f - f[:half].mean(0)) / f[:half].std(0)
    centroids = np.array([z[:half][c[:half] == k].mean(0) for k in range(1, 5)])
    pred = np.argmin(((z[half:, None] - centroids[None]) ** 2).sum(-1), 1) + 1
    assert np.mean(pred == c[half:]) > 0.85


def test_shapes_have_a_thin_ignore_band_on_every_boundary(shapes):
    _, labels, instances = shapes
    assert 0.04 < np.mean(labels == 255) < 0.15
    for lab, inst in zip(labels[:40], instances[:40]):
        seg = lab.astype(np.int64) * 256 + inst
        # two 4-neighbours that are both labelled (not ignore) never belong to different segments
        for a, b in ((seg[1:], seg[:-1]), (seg[:, 1:], seg[:, :-1])):
            both = (a // 256 != 255) & (b // 256 != 255)
            assert np.all(a[both] == b[both])
    counts = np.bincount(labels.ravel(), minlength=256)
    assert all(counts[k] > 0.02 * labels.size for k in range(1, 5))      # every class present


def test_boundary_band_by_hand():
    seg = np.zeros((4, 6), dtype=np.int64)
    seg[:, 3:] = 1
    band = data.boundary_band(seg, width=1)
    assert band[:, 2:4].all() and not band[:, :2].any() and not band[:, 4:].any()
    band2 = data.boundary_band(seg, width=2)
    assert band2[:, 1:5].all() and not band2[:, 0].any() and not band2[:, 5].any()


def test_digits_canvas_classes_and_rims():
    images, labels, instances = data.make_digits(200, seed=3)
    assert images.shape == (200, 1, 64, 64) and images.dtype == np.uint8
    present = set(np.unique(labels).tolist())
    assert present == set(range(11)) | {255}
    for lab, inst in zip(labels[:50], instances[:50]):
        n = int(inst.max())
        assert 1 <= n <= 3
        for i in range(1, n + 1):
            assert np.unique(lab[inst == i]).size == 1 and lab[inst == i][0] >= 1
    ink = images[:, 0][(labels >= 1) & (labels <= 10)].mean()
    ground = images[:, 0][labels == 0].mean()
    assert ink > ground + 60                      # digits are drawn brighter than the background


def test_digits_sources_are_disjoint_and_errors():
    parts = synthetic.digits_source_split(1797, seed=0)
    assert sum(len(v) for v in parts.values()) == 1797
    assert not set(parts["train"]) & set(parts["val"]) and not set(parts["val"]) & set(parts["test"])
    with pytest.raises(ValueError, match="make_digits: expected source"):
        data.make_digits(2, source="dev")
    with pytest.raises(ValueError, match="make_shapes: expected n to be an int >= 0, got -1"):
        data.make_shapes(-1)
    with pytest.raises(ValueError, match="make_shapes: expected size to be an int >= 32, got 8"):
        data.make_shapes(1, size=8)


def test_coins_splits_do_not_share_coins():
    splits = photo.make_coins()
    assert {k: v[0].shape[0] for k, v in splits.items()} == {"train": 147, "val": 42, "test": 42}
    bands = list(photo.COINS_BANDS.values())
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:])) and bands[-1][1] == 303
    instances = photo.coins_mask(photo.coins_photo())
    for (y0, y1), (y2, _) in zip(bands, bands[1:]):
        above = set(np.unique(instances[y0:y1])) - {0}
        below = set(np.unique(instances[y2:])) - {0}
        assert not above & below                   # every coin lies in one band only
    images, labels, _ = splits["train"]
    assert 0.2 < np.mean(labels == 1) < 0.6 and np.mean(labels == 255) < 0.1
