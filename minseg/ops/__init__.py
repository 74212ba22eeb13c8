"""The math: pure forward / backward function pairs, no state."""
from .activations import (DropoutCache, ReluCache, SoftmaxCache, dropout, dropout_backward, log_softmax,
                          log_softmax_backward, relu, relu_backward, softmax, softmax_backward)
from .conv import Conv2dCache, conv2d, conv2d_backward
from .im2col import col2im, im2col
from .conv_matrix import CooMatrix, convolution_matrix, convolution_matrix_coo
from .conv_transpose import ConvTranspose2dCache, conv_transpose2d, conv_transpose2d_backward
from .context import (BroadcastToSizeCache, GlobalAvgPool2dCache, broadcast_to_size, broadcast_to_size_backward,
                      global_avg_pool2d, global_avg_pool2d_backward)
from .interpolate import (BilinearCache, bilinear_interpolate, bilinear_interpolate_backward, bilinear_kernel,
                          interpolation_matrix, nearest_indices)
from .linear import LinearCache, linear, linear_backward
from .losses import CrossEntropyCache, cross_entropy, cross_entropy_backward
from .normalization import (BatchNorm2dCache, BatchNormReLU2dCache, L2NormalizeCache, batch_norm2d,
                            batch_norm2d_backward, batch_norm_relu2d, batch_norm_relu2d_backward, l2_normalize,
                            l2_normalize_backward)
from .pooling import MaxPool2dCache, max_pool2d, max_pool2d_backward
from .pyramid import (AdaptiveAvgPool2dCache, AdaptiveMaxPool2dCache, SpatialPyramidPoolCache, adaptive_avg_pool2d,
                      adaptive_avg_pool2d_backward, adaptive_bins, adaptive_max_pool2d, adaptive_max_pool2d_backward,
                      adaptive_output_size, spatial_pyramid_pool, spatial_pyramid_pool_backward)
from .unpooling import (BedOfNailsCache, MaxUnpool2dCache, NearestCache, bed_of_nails_unpool,
                        bed_of_nails_unpool_backward, max_unpool2d, max_unpool2d_backward, upsample_nearest,
                        upsample_nearest_backward)

__all__ = ["conv2d", "conv2d_backward", "Conv2dCache", "im2col", "col2im"]

# upsampling: transposed convolution and its matrix, pooling / unpooling, interpolation
__all__ += [
    "conv_transpose2d", "conv_transpose2d_backward", "ConvTranspose2dCache",
    "convolution_matrix", "convolution_matrix_coo", "CooMatrix",
    "max_pool2d", "max_pool2d_backward", "MaxPool2dCache",
    "max_unpool2d", "max_unpool2d_backward", "MaxUnpool2dCache",
    "bed_of_nails_unpool", "bed_of_nails_unpool_backward", "BedOfNailsCache",
    "global_avg_pool2d", "global_avg_pool2d_backward", "GlobalAvgPool2dCache",
    "broadcast_to_size", "broadcast_to_size_backward", "BroadcastToSizeCache",
    "l2_normalize", "l2_normalize_backward", "L2NormalizeCache",
    "bilinear_interpolate", "bilinear_interpolate_backward", "BilinearCache",
    "upsample_nearest", "upsample_nearest_backward", "NearestCache",
    "interpolation_matrix", "nearest_indices", "bilinear_kernel",
]

# adaptive pooling and spatial pyramid pooling: a fixed-size output from any input size
__all__ += [
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "AdaptiveAvgPool2dCache",
    "adaptive_max_pool2d", "adaptive_max_pool2d_backward", "AdaptiveMaxPool2dCache",
    "spatial_pyramid_pool", "spatial_pyramid_pool_backward", "SpatialPyramidPoolCache",
    "adaptive_bins", "adaptive_output_size",
]

# layers' math: activations, dropout, linear, batch norm, the loss
__all__ += [
    "relu", "relu_backward", "ReluCache", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "SoftmaxCache", "dropout", "dropout_backward", "DropoutCache",
    "linear", "linear_backward", "LinearCache",
    "batch_norm2d", "batch_norm2d_backward", "BatchNorm2dCache",
    "batch_norm_relu2d", "batch_norm_relu2d_backward", "BatchNormReLU2dCache",
    "cross_entropy", "cross_entropy_backward", "CrossEntropyCache",
]
