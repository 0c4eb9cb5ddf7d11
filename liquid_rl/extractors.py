"""A liquid cell over a window of recent observations, as an SB3 features extractor.

Off-policy algorithms (SAC, TD3) and plain PPO/A2C have no recurrent state; the usual
substitute is frame stacking (``VecFrameStack``). :class:`LiquidHistoryExtractor` reads
the stacked window as a sequence of K observations and runs a liquid cell over it from a
zero state, so the cell's dynamics, not a flat MLP, integrate the history::

    env = VecFrameStack(make_vec_env("liquid_rl/PendulumNoVel-v1"), n_stack=4)
    SAC("MlpPolicy", env, policy_kwargs=dict(
        features_extractor_class=LiquidHistoryExtractor,
        features_extractor_kwargs=dict(history=4, cell="ltc", units=16)))

Layouts (those of ``VecFrameStack``, oldest frame first):

- vectors: (K * D,) -> K steps of D features;
- images: (K * C, H, W) after SB3's ``VecTransposeImage`` -> K images of C channels,
  each through the NCP-paper conv head (``liquid_rl.conv.NCPConvHead``, shared over frames).

After an episode start ``VecFrameStack`` fills the window with zeros; the cell sees those
zero frames as inputs, like the MLP it replaces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from liquid_rl.conv import NCPConvHead
from liquid_rl.core import CoreSpec, check_cell
from liquid_rl.wirings import Wiring

__all__ = ["LiquidHistoryExtractor"]


class LiquidHistoryExtractor(BaseFeaturesExtractor):
    """Run a liquid cell over the last ``history`` stacked observations.

    Args:
        observation_space: a Box of K stacked vectors (K * D,) or of K stacked images
            (K * C, H, W), channels first (SB3 transposes image envs).
        history: K, the ``n_stack`` of ``VecFrameStack``; must divide the vector length or
            the number of image channels.
        cell: "ltc", "cfc" (or another key of ``liquid_rl.core.CELLS``).
        units: neurons of the cell.
        wiring: "full", "ncp", "random", a Wiring or its ``to_config()``.
        output_size: neurons read out (motor neurons). Default: all units for "full",
            ``max(1, units // 4)`` for "ncp"/"random", the motor count of a Wiring.
        features_dim: if given, a Linear layer maps the cell's last output to this many
            features; otherwise the features are the last output (output_size).
        conv_features: features per image from the conv head (images only).
        step_time: cell time between two frames (1.0: ncps' unit step). An LTC starts with
            time constants of about 0.1 unit, so a smaller value (e.g. 0.1) lets its state
            carry more from frame to frame.
        **cell_options: the cell's own options (ode_unfolds, solver, mode, ...).

    ``forward(obs (B, K * D) or (B, K * C, H, W)) -> (B, features_dim)``: the output of the
    cell at the newest frame.
    """

    def __init__(self, observation_space: spaces.Space, history: int, cell: str = "ltc", units: int = 32,
                 wiring: str | Wiring | dict[str, Any] = "full", output_size: int | None = None,
                 features_dim: int | None = None, conv_features: int = 32, step_time: float = 1.0,
                 **cell_options: Any) -> None:
        if not isinstance(history, (int, np.integer)) or isinstance(history, bool) or history < 1:
            raise ValueError(f"history must be a positive integer (the n_stack of VecFrameStack), got {history!r}")
        check_cell(cell)
        if not isinstance(observation_space, spaces.Box):
            raise ValueError(f"LiquidHistoryExtractor takes a Box observation space (stacked vectors or images), "
                             f"got {observation_space}")
        image = is_image_space(observation_space, check_channels=False)
        shape = observation_space.shape
        if image:
            if not is_image_space_channels_first(observation_space):
                raise ValueError(f"LiquidHistoryExtractor needs channels-first images (K*C, H, W), got shape {shape}; "
                                 "SB3 transposes image envs with VecTransposeImage")
            channels = shape[0]
            if channels % history:
                raise ValueError(f"history={history} does not divide the {channels} image channels of {shape}: "
                                 f"stack the env with VecFrameStack(n_stack={history})")
        elif len(shape) != 1:
            raise ValueError(f"LiquidHistoryExtractor takes stacked vectors (K*D,) or images (K*C, H, W); "
                             f"got a Box of shape {shape}")
        elif shape[0] % history:
            raise ValueError(f"history={history} does not divide the observation length {shape[0]}: "
                             f"stack the env with VecFrameStack(n_stack={history})")
        if features_dim is not None and (not isinstance(features_dim, (int, np.integer)) or features_dim < 1):
            raise ValueError(f"features_dim must be a positive integer or None, got {features_dim!r}")
        spec = CoreSpec.create(cell, units, wiring, output_size, cell_options,
                               default_wired=max(1, int(units) // 4) if isinstance(units, (int, np.integer)) else 1,
                               step_time=step_time)
        super().__init__(observation_space, features_dim or spec.output_size)
        self.core_spec = spec
        self.history = int(history)
        self.step_time = spec.step_time
        self.image = image
        self.head: NCPConvHead | None = None
        if image:
            self.frame_shape: tuple[int, ...] = (shape[0] // history, *shape[1:])
            self.head = NCPConvHead(self.frame_shape[0], shape[1], shape[2], conv_features)
            step_features = conv_features
        else:
            self.frame_shape = (shape[0] // history,)
            step_features = self.frame_shape[0]
        self.core = spec.build(step_features)
        self.proj = nn.Linear(self.core.output_size, features_dim) if features_dim else nn.Identity()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        B = observations.shape[0]
        frames = observations.reshape(B, self.history, *self.frame_shape)        # (B, K, ...)
        if self.head is not None:
            x = self.head(frames.flatten(0, 1)).reshape(B, self.history, -1)
        else:
            x = frames
        x = x.transpose(0, 1)                                                    # (K, B, F)
        state = x.new_zeros((B, self.core.state_size))
        y, _ = self.core(x, state, self.core_spec.timespan, None)
        return self.proj(y[-1])
