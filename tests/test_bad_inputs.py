"""Bad inputs that used to give silent wrong answers: rgb_to_id layouts and dtypes, predict on NaN pixels."""
import numpy as np
import pytest

from minseg.data.convert import rgb_to_id
from minseg.models import build_model
from minseg.train import predict


# --------------------------------------------------------------------------- rgb_to_id

def test_rgb_to_id_on_channels_last_uint8():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 1] = (1, 2, 3)                              # R + 256 G + 256^2 B
    rgb[1, 2] = (255, 255, 255)
    ids = rgb_to_id(rgb)
    assert ids.shape == (2, 3) and ids.dtype == np.int64
    assert ids[0, 1] == 1 + 256 * 2 + 65536 * 3 and ids[1, 2] == 2**24 - 1 and ids[0, 0] == 0
    np.testing.assert_array_equal(rgb_to_id(rgb.astype(np.int32)), ids)     # any integer dtype in 0..255


@pytest.mark.parametrize("shape,words", [
    ((3, 4, 5), ["(H, W, 3)", "(3, 4, 5)", "transpose(1, 2, 0)"]),        # read_image's (3, H, W)
    ((4, 5), ["(H, W, 3)", "(4, 5)", "grey"]),
    ((4, 5, 4), ["(H, W, 3)", "(4, 5, 4)"]),                              # RGBA
    ((1, 4, 5, 3), ["(H, W, 3)", "(1, 4, 5, 3)"]),
])
def test_rgb_to_id_refuses_other_layouts(shape, words):
    with pytest.raises(ValueError) as info:
        rgb_to_id(np.zeros(shape, dtype=np.uint8))
    message = str(info.value)
    assert message.startswith("rgb_to_id: expected rgb of shape (H, W, 3), got shape")
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, bool])
def test_rgb_to_id_refuses_float_and_bool(dtype):
    with pytest.raises(TypeError, match=rf"rgb_to_id: expected rgb of an integer dtype \(uint8 colours 0..255\), "
                                        rf"got {np.dtype(dtype)}"):
        rgb_to_id(np.full((2, 2, 3), 0.5).astype(dtype))


def test_rgb_to_id_refuses_values_outside_a_byte():
    rgb = np.zeros((2, 2, 3), dtype=np.int64)
    rgb[0, 0, 1] = 256
    with pytest.raises(ValueError, match=r"rgb_to_id: expected rgb values in 0..255, got values in 0..256"):
        rgb_to_id(rgb)
    with pytest.raises(ValueError, match=r"got values in -1..0"):
        rgb_to_id(-np.ones((1, 1, 3), dtype=np.int16) * np.array([1, 0, 0], dtype=np.int16))


# --------------------------------------------------------------------------- predict on NaN / inf pixels

@pytest.fixture
def model():
    return build_model("pixel", num_classes=3, in_channels=3, rng=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_model_predict_refuses_non_finite_pixels(model, value):
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    x[1, 2, 3, 0] = value
    with pytest.raises(ValueError, match=r"PixelClassifier.predict: expected finite values in x, got 1 NaN or inf "
                                         r"in x of shape \(2, 3, 4, 5\), the first at index \(1, 2, 3, 0\)"):
        model.predict(x)
    assert model.training                                   # refused before the mode switch
    assert model.predict(np.zeros((2, 3, 4, 5), dtype=np.float32)).shape == (2, 4, 5)


def test_model_predict_refuses_non_finite_logits(model):
    for p in model.parameters():
        p.data[...] = np.nan                                # a diverged model
    with pytest.raises(ValueError, match=r"expected finite values in logits, .* \(are the weights finite\?\)"):
        model.predict(np.zeros((1, 3, 2, 2), dtype=np.float32))


def test_train_predict_names_the_pixel_in_the_whole_array(model):
    images = np.zeros((5, 3, 4, 4), dtype=np.float32)
    images[4, 0, 1, 2] = np.nan                             # in the third batch of 2
    images[3, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"predict: expected finite values in images, got 2 NaN or inf in images "
                                         r"of shape \(5, 3, 4, 4\), the first at index \(3, 1, 0, 0\)"):
        predict(model, images, batch_size=2)
    assert predict(model, np.zeros((5, 3, 4, 4), dtype=np.float32), batch_size=2).shape == (5, 4, 4)
