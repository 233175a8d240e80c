"""The ResNet-18 is built as the reference's backbone/ResNet18.py: symmetric padding 1 for
every 3x3 convolution (stride 2 too), PyTorch's default init, PyTorch's BatchNorm update."""

import math

import keras
import numpy as np
import pytest

from clser_tf import backbones
from helpers import keras_dtype


@pytest.fixture(scope="module")
def net() -> keras.Model:
    keras.utils.set_random_seed(0)
    return backbones.resnet18((16, 16, 3), 7, mean=None, std=None, input_dtype="float32",
                              base_filters=4)


def test_stride2_output_shapes(net):
    convs = {l.name: l for l in net.layers if isinstance(l, keras.layers.Conv2D)}
    for stage, size in [(2, 8), (3, 4), (4, 2)]:
        for name in (f"stage{stage}_block1_conv1", f"stage{stage}_block1_shortcut_conv"):
            assert convs[name].strides == (2, 2)
            assert tuple(convs[name].output.shape[1:3]) == (size, size)


def test_every_3x3_conv_pads_one_pixel_on_each_side(net):
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (3, 3):
            assert layer.padding == "valid"
            pad = layer.input._keras_history.operation
            assert isinstance(pad, keras.layers.ZeroPadding2D), layer.name
            assert pad.padding == ((1, 1), (1, 1)), layer.name


def test_stride2_conv_reads_the_pixels_the_reference_reads():
    """Output (i, j) of a padding-1 stride-2 3x3 conv reads input rows/cols 2i-1..2i+1."""
    inp = keras.Input((6, 6, 1))
    x = keras.layers.ZeroPadding2D(1)(inp)
    conv = keras.layers.Conv2D(1, 3, 2, padding="valid", use_bias=False)
    model = keras.Model(inp, conv(x))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[0, 0] = 1.0  # picks the top-left tap: input pixel (2i-1, 2j-1)
    conv.set_weights([kernel])
    image = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    out = model.predict(image, verbose=0)[0, :, :, 0]
    padded = np.pad(image[0, :, :, 0], 1)
    np.testing.assert_array_equal(out, padded[0:6:2, 0:6:2])
    assert out[0, 0] == 0.0 and out[1, 1] == image[0, 1, 1, 0]


def test_init_bounds_per_layer(net):
    for layer in net.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = np.asarray(layer.kernel)
            bound = 1.0 / math.sqrt(int(np.prod(kernel.shape[:-1])))
            assert np.abs(kernel).max() <= bound, layer.name
            assert np.abs(kernel).max() > 0.8 * bound, layer.name  # the full range is used
            assert kernel.std() == pytest.approx(bound / math.sqrt(3), rel=0.3), layer.name
    head = net.get_layer("classifier")
    bias, bound = np.asarray(head.bias), 1.0 / math.sqrt(head.kernel.shape[0])
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.0


def test_mlp_keeps_glorot_and_zero_bias():
    keras.utils.set_random_seed(0)
    layer = backbones.mlp().get_layer("fc1")
    assert np.all(np.asarray(layer.bias) == 0.0)
    limit = math.sqrt(6.0 / (784 + 100))
    assert limit * 0.9 < np.abs(np.asarray(layer.kernel)).max() <= limit


def test_batch_norm_running_variance_is_unbiased_as_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 3, 3, 2)).astype(np.float32)
    bn = backbones.TorchBatchNorm(momentum=0.9, epsilon=1e-5)
    out = np.asarray(bn(x, training=True))
    n = 4 * 3 * 3
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(np.asarray(bn.moving_mean), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance),
                               0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn(x, training=False)),
                               (x - bn.moving_mean) / np.sqrt(bn.moving_variance + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_standardize_is_kerass_normalization_in_float32_and_exact_in_float64():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)
    images = np.random.default_rng(0).random((2, 4, 4, 3))
    keras_layer = keras.layers.Normalization(mean=list(mean), variance=[s * s for s in std])
    np.testing.assert_array_equal(backbones.Standardize(mean, std)(images.astype(np.float32)),
                                  keras_layer(images.astype(np.float32)))
    with keras_dtype("float64"):
        net = backbones.resnet18((4, 4, 3), 2, mean, std, input_dtype="float64",
                                 base_filters=2, scale=1.0)
        clone = keras.models.clone_model(net)  # as the EMA copies are made
    for model in (net, clone):
        out = model.get_layer("normalization")(images)
        assert out.dtype == "float64"
        np.testing.assert_allclose(out, (images - mean) / np.asarray(std), rtol=0, atol=1e-15)
