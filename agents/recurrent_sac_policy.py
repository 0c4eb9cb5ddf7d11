"""Networks of recurrent SAC: a recurrent actor and recurrent twin critics.

Every network owns its recurrent core (built by :meth:`liquid_rl.core.CoreSpec.build`:
"ltc", "cfc", "lstm", and any cell registered there later, such as "liquid_s4"):

- actor: ``obs -> features -> core -> MLP(pi) -> (mean, log_std)`` of a tanh-squashed
  Gaussian, as SB3's SAC actor but with a core between features and MLP;
- critic ``k`` (k < n_critics): ``obs -> features -> core -> concat(., action) ->
  MLP_k(qf) -> Q_k``. The core reads observations only and the action joins after it,
  so the core's output at step t summarises the history up to ``o_t`` and Q can be
  asked about any action at t (the replayed one for the TD loss, the actor's for the
  actor loss) without running the core again. By default the twin Q heads share one
  critic core, as in pomdp-baselines (separate from the actor's core, which is what
  matters there); ``share_critic_core=False`` gives each Q its own core.
- the target critic is a copy of the critic with its own cores (Polyak-averaged).

All sequence inputs are time-major: observations (T, B, *obs_shape), resets (T, B) bool
(True where an episode starts: the core zeroes its state there), states (B, S) flat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    FlattenExtractor,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from liquid_rl.core import Core, CoreSpec, action_output_size
from liquid_rl.core_inputs import CoreInputs, check_core_inputs, extra_size, observation_part, split_observation
from liquid_rl.wirings import Wiring

LOG_STD_MAX = 2
LOG_STD_MIN = -20


def _unroll_core(core: Core, x: th.Tensor, state: th.Tensor, resets: th.Tensor,
                 burn_in: int, timespan: float | None = None) -> th.Tensor:
    """Run ``core`` over x (T, B, I) from state (B, S), ``timespan`` cell time per step
    (None: one unit); the first ``burn_in`` steps only rebuild the state, without
    gradient. Returns the outputs of the other steps, (T - burn_in, B, O)."""
    if burn_in > 0:
        with th.no_grad():
            _, state = core(x[:burn_in], state, timespan, resets[:burn_in])
    y, _ = core(x[burn_in:], state, timespan, resets[burn_in:])
    return y


def core_input(net: BaseModel, inputs: CoreInputs, obs: th.Tensor) -> th.Tensor:
    """Observations (T, B, *obs_shape) -> core inputs (T, B, I): the observation part goes
    through ``net``'s features extractor, the previous action and reward (appended by
    ``PreviousActionReward``) join it through ``inputs``."""
    T, B = obs.shape[:2]
    obs, extra = split_observation(obs, inputs.n_extra)
    features = net.extract_features(obs.reshape(T * B, *obs.shape[2:]), net.features_extractor)
    return inputs(features.reshape(T, B, -1), extra)


class RecurrentActor(BasePolicy):
    """Recurrent SAC actor: features -> core -> MLP -> tanh-squashed Gaussian.

    :param observation_space: observation space.
    :param action_space: a Box action space.
    :param net_arch: hidden layers of the MLP after the core.
    :param features_extractor: module mapping (N, *obs_shape) to (N, features_dim).
    :param features_dim: features per step (the core's input size).
    :param core_spec: the core's description.
    :param activation_fn: activation of the MLP.
    :param normalize_images: divide image observations by 255.
    :param inputs: what the core reads (observation features, previous action and
        reward, embedded); default: the features alone.
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        core_spec: CoreSpec,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        inputs: CoreInputs | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, features_extractor=features_extractor,
                         normalize_images=normalize_images, squash_output=True)
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.core_spec = core_spec
        self.activation_fn = activation_fn
        self.inputs = inputs if inputs is not None else CoreInputs(("obs",), features_dim, 0)
        self.core = core_spec.build(self.inputs.output_size)
        self.state_size: int = int(self.core.state_size)
        action_dim = get_action_dim(self.action_space)
        self.latent_pi = nn.Sequential(*create_mlp(self.core.output_size, -1, net_arch, activation_fn))
        last = net_arch[-1] if len(net_arch) > 0 else self.core.output_size
        self.mu = nn.Linear(last, action_dim)
        self.log_std = nn.Linear(last, action_dim)
        self.action_dist = SquashedDiagGaussianDistribution(action_dim)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dict(net_arch=self.net_arch, features_dim=self.features_dim, core_spec=self.core_spec,
                         activation_fn=self.activation_fn, features_extractor=self.features_extractor,
                         inputs=self.inputs))
        return data

    def initial_state(self, n: int) -> th.Tensor:
        """The zero state, (n, S)."""
        return th.zeros(n, self.state_size, device=self.device)

    def _features(self, obs: th.Tensor) -> th.Tensor:
        """(T, B, *obs_shape) -> the core's inputs (T, B, I)."""
        return core_input(self, self.inputs, obs)

    def unroll(self, obs: th.Tensor, state: th.Tensor, resets: th.Tensor, burn_in: int = 0) -> th.Tensor:
        """Core outputs for obs (T, B, *obs_shape) from state (B, S) with resets (T, B):
        the first ``burn_in`` steps run without gradient and are dropped; returns
        (T - burn_in, B, O)."""
        return _unroll_core(self.core, self._features(obs), state, resets, burn_in, self.core_spec.timespan)

    def dist_params(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Core outputs (..., O) -> mean, log_std (..., A) of the Gaussian before tanh."""
        h = self.latent_pi(latent)
        return self.mu(h), th.clamp(self.log_std(h), LOG_STD_MIN, LOG_STD_MAX)

    def action_log_prob(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Sample squashed actions (..., A) in [-1, 1] and their log-probabilities (...)."""
        shape = latent.shape[:-1]
        mean, log_std = self.dist_params(latent.reshape(-1, latent.shape[-1]))
        actions, log_prob = self.action_dist.log_prob_from_params(mean, log_std)
        return actions.reshape(*shape, -1), log_prob.reshape(shape)

    def act(self, obs: th.Tensor, state: th.Tensor, episode_start: th.Tensor,
            deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """One step: obs (B, *obs_shape), state (B, S), episode_start (B,) bool ->
        squashed action (B, A) in [-1, 1], next state (B, S). The state is zeroed
        where ``episode_start`` is True before the step."""
        latent, state = self.core(self._features(obs.unsqueeze(0)), state, self.core_spec.timespan,
                                  episode_start.bool().unsqueeze(0))
        mean, log_std = self.dist_params(latent[0])
        actions = self.action_dist.actions_from_params(mean, log_std, deterministic=deterministic)
        return actions, state

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """Stateless one-step action from the zero state (SB3's abstract hook);
        use :meth:`RecurrentSACPolicy.predict` to carry the state across steps."""
        assert isinstance(observation, th.Tensor)
        n = observation.shape[0]
        starts = th.ones(n, dtype=th.bool, device=self.device)
        return self.act(observation, self.initial_state(n), starts, deterministic)[0]


class RecurrentCritic(BaseModel):
    """``n_critics`` recurrent Q-networks, each ``concat(core(features), action) -> MLP_k -> Q_k``,
    with one core shared by the Q heads or one core per Q.

    :param observation_space: observation space.
    :param action_space: a Box action space.
    :param net_arch: hidden layers of each Q MLP.
    :param features_extractor: module mapping (N, *obs_shape) to (N, features_dim),
        shared by the Q-networks of this critic.
    :param features_dim: features per step.
    :param core_spec: the core's description.
    :param activation_fn: activation of the MLPs.
    :param normalize_images: divide image observations by 255.
    :param n_critics: number of Q-networks (2: twin Q).
    :param share_core: one core for all Q heads (True) or one core per Q head.
    :param inputs: what the cores read (see :class:`RecurrentActor`).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        core_spec: CoreSpec,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_core: bool = True,
        inputs: CoreInputs | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, features_extractor=features_extractor,
                         normalize_images=normalize_images)
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        action_dim = get_action_dim(self.action_space)
        self.n_critics = n_critics
        self.core_spec = core_spec
        self.share_core = share_core
        self.inputs = inputs if inputs is not None else CoreInputs(("obs",), features_dim, 0)
        self.cores = nn.ModuleList(core_spec.build(self.inputs.output_size)
                                   for _ in range(1 if share_core else n_critics))
        out = self.cores[0].output_size
        self.q_networks = nn.ModuleList(
            nn.Sequential(*create_mlp(out + action_dim, 1, net_arch, activation_fn)) for _ in range(n_critics)
        )

    def unroll(self, obs: th.Tensor, resets: th.Tensor, burn_in: int = 0) -> list[th.Tensor]:
        """Each core's outputs for obs (T, B, *obs_shape) from the zero state with
        resets (T, B); the first ``burn_in`` steps run without gradient and are dropped.
        Returns ``n_critics`` tensors (T - burn_in, B, O)."""
        B = obs.shape[1]
        features = core_input(self, self.inputs, obs)
        latents = [_unroll_core(core, features, th.zeros(B, core.state_size, device=features.device), resets, burn_in,
                                self.core_spec.timespan) for core in self.cores]
        return latents * self.n_critics if self.share_core else latents

    def q_values(self, latents: list[th.Tensor], actions: th.Tensor) -> list[th.Tensor]:
        """Q-values (..., ) of each critic for its core outputs (..., O) and actions (..., A)."""
        return [q_net(th.cat([latent, actions], dim=-1)).squeeze(-1)
                for latent, q_net in zip(latents, self.q_networks)]


class RecurrentSACPolicy(BasePolicy):
    """Policy of :class:`~liquid_rl.agents.RecurrentSAC`: recurrent actor, recurrent
    twin critics and their target copy, each network with its own core.

    :param observation_space: observation space (Box or Discrete).
    :param action_space: a Box action space.
    :param lr_schedule: learning rate schedule.
    :param cell: the actor's cell, a name of ``liquid_rl.core.CELLS``
        ("ltc", "cfc", "lstm", "liquid_s4", ...).
    :param units: neurons / hidden units of the actor's core (Liquid-S4: d_model).
    :param wiring: "full", "ncp", "random", a ``liquid_rl.wirings.Wiring`` or its
        ``to_config()`` dict.
    :param output_size: outputs (motor neurons) of the core; default: all ``units`` for
        "full", the action size for "ncp"/"random" (at most units - 3), the motor count
        of a Wiring (as ``LiquidRecurrentPolicy``).
    :param critic_cell, critic_units, critic_wiring, critic_output_size,
        critic_cell_options: the same for each critic core. ``None`` takes the actor's
        (``cell``, ``units``; ``wiring``, ``output_size`` and the cell options when the
        critic cell is the actor's, else "full", the default size and no options).
    :param net_arch: hidden layers after the cores: a list for both, or
        ``dict(pi=[...], qf=[...])``; default ``[256, 256]`` as SAC.
    :param activation_fn: activation of the MLPs.
    :param features_extractor_class: per-step features before the cores.
    :param features_extractor_kwargs: its keyword arguments.
    :param normalize_images: divide image observations by 255.
    :param optimizer_class: optimizer of the actor and of the critic.
    :param optimizer_kwargs: its keyword arguments (besides the learning rate).
    :param n_critics: number of Q-networks.
    :param share_critic_core: the Q heads share one critic core (pomdp-baselines'
        design, the default) or each Q has its own core (costs one more core per update).
    :param step_time: cell time of one env step, for every core (1.0: ncps' unit step).
        An LTC starts with time constants of about 0.1 unit, so at 1.0 its state settles
        within each step; a smaller value (e.g. 0.1) lets it carry more across steps.
    :param core_inputs: what every core reads per step: "obs" and optionally
        "prev_action", "prev_reward" (the env must then be wrapped in
        ``liquid_rl.core_inputs.PreviousActionReward`` with those inputs, which appends them
        to the observation; zero at episode starts). Default ``("obs",)``.
    :param input_embeddings: per-input embedding sizes, e.g. ``{"obs": 32, "prev_action":
        16, "prev_reward": 16}`` (pomdp-baselines); an input without one enters raw. The
        actor and the critic each have their own embeddings.
    :param embedding_layer_norm: LayerNorm after each embedding.
    :param cell_options: the actor cell's own options (LTC: ``ode_unfolds``, ``solver``,
        ``mixed_memory``; CfC: ``mode``, ``backbone_units``; wired: ``seed``,
        ``sparsity_level``; Liquid-S4: ``d_state``, ``liquid_degree``, ...).
    """

    actor: RecurrentActor
    critic: RecurrentCritic
    critic_target: RecurrentCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        cell: str = "cfc",
        units: int = 64,
        wiring: str | Wiring | dict[str, Any] = "full",
        output_size: int | None = None,
        critic_cell: str | None = None,
        critic_units: int | None = None,
        critic_wiring: str | Wiring | dict[str, Any] | None = None,
        critic_output_size: int | None = None,
        critic_cell_options: dict[str, Any] | None = None,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_critic_core: bool = True,
        step_time: float = 1.0,
        core_inputs: tuple[str, ...] | list[str] = ("obs",),
        input_embeddings: dict[str, int] | None = None,
        embedding_layer_norm: bool = False,
        **cell_options: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"RecurrentSACPolicy needs a Box action space, got {action_space}")
        self.core_inputs = check_core_inputs(core_inputs)
        self.input_embeddings = dict(input_embeddings or {})
        self.embedding_layer_norm = bool(embedding_layer_norm)
        self.n_extra = extra_size(self.core_inputs, action_space)
        self.obs_space = observation_part(observation_space, self.n_extra)
        super().__init__(observation_space, action_space, features_extractor_class, features_extractor_kwargs,
                         optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs,
                         squash_output=True, normalize_images=normalize_images)
        n_actions = action_output_size(action_space)
        self.actor_core = CoreSpec.create(cell, units, wiring, output_size, cell_options, n_actions, step_time)
        same_cell = critic_cell in (None, cell)
        self.critic_core = CoreSpec.create(
            critic_cell or cell,
            critic_units if critic_units is not None else units,
            critic_wiring if critic_wiring is not None else (wiring if same_cell else "full"),
            critic_output_size if critic_output_size is not None else (output_size if same_cell else None),
            critic_cell_options if critic_cell_options is not None else (cell_options if same_cell else {}),
            n_actions,
            step_time,
        )
        self._core_args = dict(
            cell=cell, units=units, wiring=wiring, output_size=output_size, critic_cell=critic_cell,
            critic_units=critic_units, critic_wiring=critic_wiring, critic_output_size=critic_output_size,
            critic_cell_options=critic_cell_options, step_time=step_time, core_inputs=self.core_inputs,
            input_embeddings=input_embeddings, embedding_layer_norm=self.embedding_layer_norm, **cell_options,
        )
        if net_arch is None:
            net_arch = [256, 256]
        self.net_arch = net_arch
        self.actor_arch, self.critic_arch = get_actor_critic_arch(net_arch)
        self.activation_fn = activation_fn
        self.n_critics = n_critics
        self.share_critic_core = share_critic_core
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                                    **self.optimizer_kwargs)
        self.critic = self.make_critic()
        self.critic_target = self.make_critic()
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)
        self.critic_target.requires_grad_(False)
        self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                                     **self.optimizer_kwargs)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """A features extractor for the observation part (without the previous action and reward)."""
        return self.features_extractor_class(self.obs_space, **self.features_extractor_kwargs)

    def _make_inputs(self, features_dim: int) -> CoreInputs:
        action_size = get_action_dim(self.action_space) if "prev_action" in self.core_inputs else 0
        return CoreInputs(self.core_inputs, features_dim, action_size, self.input_embeddings,
                          self.embedding_layer_norm)

    def make_actor(self) -> RecurrentActor:
        extractor = self.make_features_extractor()
        return RecurrentActor(
            self.observation_space, self.action_space, self.actor_arch, extractor, extractor.features_dim,
            self.actor_core, self.activation_fn, self.normalize_images, self._make_inputs(extractor.features_dim),
        ).to(self.device)

    def make_critic(self) -> RecurrentCritic:
        extractor = self.make_features_extractor()
        return RecurrentCritic(
            self.observation_space, self.action_space, self.critic_arch, extractor, extractor.features_dim,
            self.critic_core, self.activation_fn, self.normalize_images, self.n_critics, self.share_critic_core,
            self._make_inputs(extractor.features_dim),
        ).to(self.device)

    @property
    def state_size(self) -> int:
        """Length S of the actor's flat recurrent state (the state ``predict`` carries)."""
        return self.actor.state_size

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(dict(
            **self._core_args, net_arch=self.net_arch, activation_fn=self.activation_fn,
            n_critics=self.n_critics, share_critic_core=self.share_critic_core, lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class, optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
        ))
        return data

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor._predict(observation, deterministic)

    def set_training_mode(self, mode: bool) -> None:
        # Called at every env step and every update. Setting the flag on every submodule
        # costs about 0.3 ms, reading the flags about 2 us: set them only where one differs.
        if any(m.training != mode for net in (self.actor, self.critic) for m in net.modules()):
            self.actor.set_training_mode(mode)
            self.critic.set_training_mode(mode)
        self.training = mode

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Action for each env and the actor state to pass at the next step.

        :param observation: (n_envs, *obs_shape), or one unbatched observation. With a
            previous action or reward in ``core_inputs`` it is the observation of an env
            wrapped in ``PreviousActionReward``, which carries them.
        :param state: (n_envs, S) from the previous call; ``None`` is the zero state.
        :param episode_start: (n_envs,) bool, True where a new episode starts (the state
            is zeroed there); ``None`` means no new episode.
        :param deterministic: the mean action instead of a sample.
        :return: actions (n_envs, *action_shape) in the env's bounds (unbatched for an
            unbatched observation) and the new state (n_envs, S).
        """
        self.set_training_mode(False)
        if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
            raise ValueError("predict() got (obs, info) from a Gymnasium reset(); pass the observation only")
        obs, vectorized = self.obs_to_tensor(observation)
        assert isinstance(obs, th.Tensor)
        n_envs = obs.shape[0]
        if state is None:
            state_t = self.actor.initial_state(n_envs)
        else:
            state = np.asarray(state, dtype=np.float32)
            if state.shape != (n_envs, self.state_size):
                raise ValueError(f"state must have shape {(n_envs, self.state_size)}, got {state.shape}")
            state_t = th.as_tensor(state, device=self.device)
        if episode_start is None:
            starts = th.zeros(n_envs, dtype=th.bool, device=self.device)
        else:
            episode_start = np.asarray(episode_start).reshape(-1)
            if episode_start.shape != (n_envs,):
                raise ValueError(f"episode_start must have shape {(n_envs,)}, got {episode_start.shape}")
            starts = th.as_tensor(episode_start.astype(bool), device=self.device)
        with th.no_grad():
            actions_t, state_t = self.actor.act(obs, state_t, starts, deterministic)
        actions = self.unscale_action(actions_t.cpu().numpy().reshape((-1, *self.action_space.shape)))
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, state_t.cpu().numpy()


MlpPolicy = RecurrentSACPolicy
