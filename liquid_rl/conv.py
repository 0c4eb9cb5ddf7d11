"""Convolutional head in the style of the NCP lane-keeping policy (Lechner et al. 2020).

A few strided convolutions reduce a camera image to a short feature vector that a small
liquid cell (the 19-neuron NCP) reads as its sensory inputs. Defaults: channels
(24, 36, 48, 64), kernels (5, 5, 3, 3), strides (2, 2, 2, 1), ReLU, then a Linear layer
to 32 features squashed by tanh (bounded inputs keep the cells' sigmoid synapses out of
saturation). On a 64x64 image the maps are 30, 13, 6, 4 pixels wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

__all__ = ["NCPConvHead", "NCPConvExtractor"]


class NCPConvHead(nn.Module):
    """Images (B, C, H, W), float -> features (B, features_dim) in [-1, 1].

    Args:
        in_channels, height, width: image layout (channels first).
        features_dim: output features (the cell's sensory inputs).
        channels, kernels, strides: one entry per convolution.
    """

    def __init__(self, in_channels: int, height: int, width: int, features_dim: int = 32,
                 channels: Sequence[int] = (24, 36, 48, 64), kernels: Sequence[int] = (5, 5, 3, 3),
                 strides: Sequence[int] = (2, 2, 2, 1)) -> None:
        super().__init__()
        if not len(channels) == len(kernels) == len(strides) or not channels:
            raise ValueError("channels, kernels and strides need one entry per convolution (at least one)")
        layers: list[nn.Module] = []
        c, h, w = in_channels, height, width
        for out, k, s in zip(channels, kernels, strides):
            h, w = (h - k) // s + 1, (w - k) // s + 1
            if h < 1 or w < 1:
                raise ValueError(f"An image of {height}x{width} pixels is too small for the conv head "
                                 f"(kernels {tuple(kernels)}, strides {tuple(strides)}); use fewer or smaller layers")
            layers += [nn.Conv2d(c, out, k, stride=s), nn.ReLU()]
            c = out
        self.in_channels, self.height, self.width = in_channels, height, width
        self.features_dim = features_dim
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.linear = nn.Sequential(nn.Linear(c * h * w, features_dim), nn.Tanh())

    def forward(self, images: Tensor) -> Tensor:
        return self.linear(self.conv(images))


class NCPConvExtractor(BaseFeaturesExtractor):
    """SB3 features extractor around :class:`NCPConvHead` for image observations.

    SB3 hands images channels first (it transposes (H, W, C) envs with
    ``VecTransposeImage``) and divided by 255 (``normalize_images=True``).
    ``normalized_image=True`` (as SB3's ``NatureCNN``) takes images already scaled, any
    Box (C, H, W) of floats; policies set it when ``normalize_images=False``.
    """

    def __init__(self, observation_space: spaces.Space, features_dim: int = 32,
                 channels: Sequence[int] = (24, 36, 48, 64), kernels: Sequence[int] = (5, 5, 3, 3),
                 strides: Sequence[int] = (2, 2, 2, 1), normalized_image: bool = False) -> None:
        if not isinstance(observation_space, spaces.Box) or not is_image_space(
                observation_space, check_channels=False, normalized_image=normalized_image):
            raise ValueError(f"NCPConvExtractor needs an image observation space (Box uint8 (C, H, W), or any Box "
                             f"(C, H, W) with normalized_image=True); got {observation_space}")
        if not is_image_space_channels_first(observation_space):
            raise ValueError(f"NCPConvExtractor needs channels-first images (C, H, W), got shape {observation_space.shape}; "
                             "SB3 transposes image envs with VecTransposeImage")
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        self.head = NCPConvHead(c, h, w, features_dim, channels, kernels, strides)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.head(observations)
