"""minseg.viz: VOC palette, colorize, overlay, and a saved grid with a legend."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minseg import viz


def test_make_palette_is_pascal_vocs():
    p = viz.make_palette(21)
    assert p.shape == (21, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0]
    assert p[1].tolist() == [128, 0, 0]
    assert p[2].tolist() == [0, 128, 0]
    assert p[15].tolist() == [192, 128, 128]       # person
    assert p[20].tolist() == [0, 64, 128]          # tvmonitor
    assert len({tuple(c) for c in viz.make_palette(256)}) == 256
    with pytest.raises(ValueError, match="make_palette: expected n to be an int >= 1, got 0"):
        viz.make_palette(0)


def test_colorize_paints_classes_and_ignore():
    labels = np.array([[0, 1], [2, 255]])
    out = viz.colorize(labels, viz.make_palette(3))
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 1].tolist() == [128, 0, 0] and out[1, 0].tolist() == [0, 128, 0]
    assert tuple(out[1, 1]) == viz.IGNORE_COLOR
    with pytest.raises(ValueError, match=r"colorize: expected labels in 0\.\.2 .* got 5"):
        viz.colorize(np.array([[5]]), viz.make_palette(3))
    with pytest.raises(TypeError, match="colorize: expected labels with an integer dtype"):
        viz.colorize(np.zeros((2, 2)), viz.make_palette(3))


def test_colorize_instances_black_background():
    out = viz.colorize_instances(np.array([[0, 1], [2, 2]]))
    assert out[0, 0].tolist() == [0, 0, 0] and out[1, 0].tolist() == out[1, 1].tolist()
    assert out[0, 1].min() >= 64


def test_overlay_blends_and_leaves_background():
    image = np.full((3, 2, 2), 0.5, dtype=np.float32)
    labels = np.array([[0, 1], [1, 255]])
    palette = viz.make_palette(2)
    out = viz.overlay(image, labels, palette, alpha=0.5)
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 0], 0.5)                              # background untinted
    np.testing.assert_allclose(out[0, 1], 0.5 * 0.5 + 0.5 * np.array([128, 0, 0]) / 255)
    np.testing.assert_allclose(viz.overlay(image, labels, palette, alpha=0.0), 0.5)
    np.testing.assert_allclose(viz.overlay(image, labels, palette, alpha=1.0, background=None)[0, 0], 0.0)
    grey = viz.overlay(np.zeros((1, 2, 2), np.uint8), labels, palette)
    assert grey.shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"overlay: expected labels of shape \(2, 2\)"):
        viz.overlay(image, labels[:1], palette)
    with pytest.raises(ValueError, match="overlay: expected alpha in"):
        viz.overlay(image, labels, palette, alpha=2)


def test_to_hwc_layouts():
    assert viz.to_hwc(np.zeros((3, 4, 5))).shape == (4, 5, 3)
    assert viz.to_hwc(np.zeros((4, 5, 3))).shape == (4, 5, 3)
    assert viz.to_hwc(np.zeros((4, 5))).shape == (4, 5, 3)
    assert viz.to_hwc(np.full((1, 2, 2), 255, np.uint8)).max() == 1.0
    with pytest.raises(ValueError, match="to_hwc: expected image of shape"):
        viz.to_hwc(np.zeros((4, 5, 7)))


def test_show_grid_saves_a_png_with_a_legend(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    from minseg.data import make_shapes, SHAPES_CLASSES

    images, labels, instances = make_shapes(3, seed=0, size=32)
    path = tmp_path / "grid.png"
    fig = viz.show_grid(images, labels, labels, class_names=SHAPES_CLASSES,
                        titles=["image", "truth", "prediction"], row_titles=["a", "b", "c"], path=path)
    try:
        assert len(fig.axes) == 9
        assert [ax.get_title() for ax in fig.axes[:3]] == ["image", "truth", "prediction"]
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        present = sorted(set(np.unique(labels).tolist()) - {255})
        assert texts == [SHAPES_CLASSES[k] for k in present] + ["ignore (255)"]
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100
    finally:
        plt.close(fig)
    fig = viz.show_grid(images, labels, instances=instances, class_names=SHAPES_CLASSES)
    try:
        assert len(fig.axes) == 9 and fig.axes[2].get_title() == "instances"
    finally:
        plt.close(fig)


def test_show_grid_errors():
    images = np.zeros((2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"show_grid: expected label map 0 of shape \(N, H, W\) with N = 2"):
        viz.show_grid(images, np.zeros((3, 4, 4), int))
    with pytest.raises(ValueError, match="show_grid: expected 2 titles"):
        viz.show_grid(images, np.zeros((2, 4, 4), int), titles=["x"])
    with pytest.raises(ValueError, match=r"show_grid: expected instances of shape \(N, H, W\) with N = 2"):
        viz.show_grid(images, instances=np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="show_grid: expected at least one image"):
        viz.show_grid([])


def test_headless_run_uses_agg(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np, matplotlib
        from minseg import viz
        fig = viz.show_grid(np.zeros((1, 3, 4, 4)), np.zeros((1, 4, 4), int), path={str(tmp_path / 'g.png')!r})
        print(matplotlib.get_backend().lower())
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg" and (tmp_path / "g.png").is_file()


def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def test_show_grid_title_and_a_legend_beside_that_does_not_wrap(tmp_path):
    import matplotlib.pyplot as plt

    from minseg.data import make_shapes, SHAPES_CLASSES

    images, labels, _ = make_shapes(2, seed=1, size=32)
    names = ["background", "a circle with a rather long class name", "square", "triangle", "cross"]
    fig = viz.show_grid(images, labels, labels, class_names=names, title="unet on shapes: 3 epochs, test mIoU 0.912",
                        path=tmp_path / "g.png")
    try:
        assert fig._suptitle.get_text() == "unet on shapes: 3 epochs, test mIoU 0.912"
        r = _drawn(fig)
        leg = fig.legends[0]
        texts = leg.get_texts()
        assert all("\n" not in t.get_text() for t in texts)
        boxes = [t.get_window_extent(r) for t in texts]
        assert len({round(b.x0) for b in boxes}) == 1                    # one column: every name starts at one x
        lb, fb = leg.get_window_extent(r), fig.bbox
        assert lb.x0 >= max(ax.get_window_extent(r).x1 for ax in fig.axes)   # beside the grid, not over it
        assert lb.x1 <= fb.x1 and lb.y0 >= fb.y0 and lb.y1 <= fb.y1          # inside the figure: nothing cut
        title_box = fig._suptitle.get_window_extent(r)
        assert title_box.y0 >= max(ax.title.get_window_extent(r).y1 for ax in fig.axes[:3]) - 1  # above the titles
        assert title_box.x0 >= 0 and title_box.x1 <= fb.x1
    finally:
        plt.close(fig)
    # 40 long names beside one short row: more columns, still all inside the figure
    many = [f"a long class name number {i}" for i in range(40)]
    lab = (np.arange(40 * 16).reshape(1, 40, 16) // 16)
    fig = viz.show_grid(np.zeros((1, 3, 40, 16)), lab, class_names=many)
    try:
        r = _drawn(fig)
        leg = fig.legends[0]
        assert len(leg.get_texts()) == 40 and len({round(t.get_window_extent(r).x0) for t in leg.get_texts()}) > 1
        lb = leg.get_window_extent(r)
        assert lb.x1 <= fig.bbox.x1 and lb.y0 >= 0 and lb.y1 <= fig.bbox.y1
        assert [ax.get_title() for ax in fig.axes] == ["image", "labels 1"]
        assert fig.axes[0].get_position().x1 < fig.axes[1].get_position().x0      # columns in order, apart
    finally:
        plt.close(fig)


def test_plot_curves_draws_loss_and_val_miou(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = [{"epoch": 1, "loss": 1.2, "val_miou": 0.31}, {"epoch": 2, "loss": 0.7, "val_miou": 0.64},
            {"epoch": 3, "loss": 0.5, "val_miou": 0.58}]
    fig = viz.plot_curves({"epochs": rows, "best_epoch": 2}, path=tmp_path / "c.png", title="t")
    try:
        ax_loss, ax_val = fig.axes[:2]
        x, y = ax_loss.lines[0].get_data()
        assert list(x) == [1, 2, 3] and list(y) == [1.2, 0.7, 0.5]
        x, y = ax_val.lines[0].get_data()
        assert list(x) == [1, 2, 3] and list(y) == [0.31, 0.64, 0.58]
        bx, by = ax_val.lines[1].get_data()
        assert list(bx) == [2] and list(by) == [0.64]                     # the best epoch, not the last
        assert "best 0.640 (epoch 2)" in [t.get_text() for t in ax_val.get_legend().get_texts()]
        assert ax_loss.get_ylabel() == "mean training loss" and ax_val.get_ylabel() == "mIoU"
        with Image.open(tmp_path / "c.png") as im:
            assert im.format == "PNG"
    finally:
        plt.close(fig)
    fig = viz.plot_curves([{"epoch": 1, "loss": 0.9}])                  # no val split: loss only, said so
    try:
        assert not fig.axes[1].lines and "no validation split" in [t.get_text() for t in fig.axes[1].texts]
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="plot_curves: expected a history with a non-empty list of epochs"):
        viz.plot_curves({"epochs": []})
