"""Liquid recurrent policies for sb3-contrib's ``RecurrentPPO``.

``RecurrentPPO(LiquidRecurrentPolicy, env, policy_kwargs=dict(cell="ltc", wiring="ncp", units=19))``
trains a policy whose memory is a liquid cell (LTC, CfC, Liquid-S4) instead of an LSTM:
the cell's state is carried from env step to env step, zeroed at episode starts, stored
in the rollout buffer and replayed over padded sequences in training, exactly where
sb3-contrib puts its LSTM state.

How it fits: ``RecurrentActorCriticPolicy`` and ``RecurrentPPO`` read ``num_layers`` and
``hidden_size`` off ``policy.lstm_actor`` and carry an LSTM pair ``(h, c)`` of shape
(num_layers, n_envs, hidden_size) everywhere. :class:`CoreAsLSTM` gives a core
(``liquid_rl.core.Core``) those attributes and packs its flat state (B, S) into such a pair;
the policy replaces ``_process_sequence`` so that a whole padded batch of sequences runs
through the core in one call, with the episode starts as resets.

Elapsed time: with a Dict observation holding a ``"dt"`` entry (as the ``IrregularTime``
wrapper produces), the cells integrate over ``dt / dt_unit`` per step instead of one unit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, \
    MlpExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn

from liquid_rl.conv import NCPConvExtractor
from liquid_rl.core import Core, CoreSpec, action_output_size, check_cell, check_units, check_wiring
from liquid_rl.core_inputs import CoreInputs, action_input_size, check_core_inputs, extra_size, observation_part, \
    split_observation
from liquid_rl.wirings import Wiring

__all__ = [
    "CoreAsLSTM",
    "extract_zero_rows_once",
    "LiquidRecurrentPolicy",
    "CnnLiquidRecurrentPolicy",
    "MultiInputLiquidRecurrentPolicy",
]

LSTMState = tuple[Tensor, Tensor]
# Keyword arguments of sb3-contrib's LSTM policy that have a liquid counterpart.
_LSTM_ONLY = {"lstm_hidden_size": "units", "n_lstm_layers": "cell options", "lstm_kwargs": "cell options"}


def extract_zero_rows_once(extract: Callable[[Tensor], Tensor], obs: Tensor) -> Tensor:
    """``extract(obs)`` with all rows of zeros sent through ``extract`` only once.

    RecurrentPPO's training minibatches pad each sequence with zero observations up to the
    longest one (sb3-contrib's ``RecurrentRolloutBuffer``): with short episodes most rows
    are padding, and an image extractor spent most of an update on them. Exact for
    extractors that treat rows independently (convolutions, MLPs; not BatchNorm in
    training mode): a zero row's features are computed once and copied.

    Args:
        extract: observations (M, *obs_shape) -> features (M, F).
        obs: observations (N, *obs_shape).

    Returns:
        features (N, F), equal to ``extract(obs)``; gradients flow to every real row.
    """
    n = obs.shape[0]
    nonzero = obs.reshape(n, -1).ne(0).any(dim=1)                  # (N,) bool, also for uint8
    real = nonzero.nonzero().squeeze(1)                            # (R,)
    if n - real.numel() < 2:  # at most one zero row: nothing to save
        return extract(obs)
    first_zero = (~nonzero).nonzero()[:1].squeeze(1)               # (1,)
    features = extract(obs[th.cat([real, first_zero])])            # (R + 1, F)
    out = features[-1:].expand(n, *features.shape[1:])             # (N, F): the zero row's features
    return out.index_copy(0, real, features[:-1])


class CoreAsLSTM(nn.Module):
    """A core (``liquid_rl.core.Core``) dressed as the ``nn.LSTM`` that RecurrentPPO expects.

    RecurrentPPO sizes its state buffers from ``num_layers`` (1) and ``hidden_size`` and
    carries a pair ``(h, c)``, each (1, B, hidden_size). The core's flat state (B, S) is
    split over that pair: ``hidden_size = ceil(S / 2)``, h holds the first half, c the
    rest (zero-padded when S is odd). :meth:`pack` and :meth:`unpack` convert. A larger
    ``hidden_size`` pads further: RecurrentPPO stores the actor's and the critic's pairs in
    one buffer shape, so when their cores differ both take the larger size.

    ``forward(x (T, B, I), (h, c), timespans (T, B, 1) | None, resets (T, B) bool | None)
    -> (y (T, B, O), (h, c))``.
    """

    num_layers = 1

    def __init__(self, core: Core, hidden_size: int | None = None) -> None:
        super().__init__()
        self.core = core
        self.input_size: int = core.input_size
        self.state_size: int = core.state_size
        self.output_size: int = core.output_size
        least = self.pair_size(self.state_size)
        if hidden_size is not None and hidden_size < least:
            raise ValueError(f"hidden_size {hidden_size} cannot hold a state of {self.state_size}; need >= {least}")
        self.hidden_size: int = least if hidden_size is None else int(hidden_size)

    @staticmethod
    def pair_size(state_size: int) -> int:
        """The least ``hidden_size`` whose pair (h, c) holds a flat state of ``state_size``."""
        return (state_size + 1) // 2

    def pack(self, state: Tensor) -> LSTMState:
        """Flat state (B, S) -> (h, c), each (1, B, hidden_size)."""
        pad = 2 * self.hidden_size - self.state_size
        if pad:
            state = th.nn.functional.pad(state, (0, pad))
        h, c = state.unsqueeze(0).chunk(2, dim=-1)
        return h, c

    def unpack(self, states: LSTMState) -> Tensor:
        """(h, c), each (1, B, hidden_size) -> flat state (B, S)."""
        return th.cat([states[0][0], states[1][0]], dim=-1)[:, : self.state_size]

    def forward(self, x: Tensor, states: LSTMState, timespans: Tensor | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        y, state = self.core(x, self.unpack(states), timespans, resets)
        return y, self.pack(state)


class LiquidRecurrentPolicy(RecurrentActorCriticPolicy):
    """Recurrent actor-critic policy with a liquid cell, for sb3-contrib's ``RecurrentPPO``.

    Data flow per step: observation -> features extractor (B, F) -> core (cell) -> latent
    (B, O) -> ``mlp_extractor`` (``net_arch``) -> action and value heads. The critic has
    its own core (``enable_critic_lstm=True``, the default), shares the actor's
    (``shared_lstm=True``, ``enable_critic_lstm=False``; no critic gradient reaches it) or
    has none (both False: a Linear layer from features to latent).

    Args:
        observation_space, action_space, lr_schedule: as for any SB3 policy.
        cell: "ltc", "cfc" (and other keys of ``liquid_rl.cells.CELLS``, e.g. "liquid_s4", "lstm").
        units: neurons of the cell (for "liquid_s4": d_model).
        wiring: "full", "ncp", "random", a ``liquid_rl.wirings.Wiring`` or its ``to_config()``.
        output_size: neurons read out as the latent (the motor neurons of an NCP). Default:
            all ``units`` for "full"; the size of the action output for "ncp"/"random"
            (at most units - 3); the motor count of a given Wiring.
        net_arch: layers after the cell, as SB3's; default ``dict(pi=[], vf=[])``: the cell's
            outputs feed the action and value heads directly.
        shared_lstm, enable_critic_lstm: sharing of the cell between actor and critic,
            with sb3-contrib's meaning.
        critic_core: the critic's own core where it should differ from the actor's, as
            ``{"cell", "units", "wiring", "output_size", **cell options}``; keys left out
            take the actor's values (another cell starts from wiring "full" and no cell
            options). E.g. an NCP actor reads out one motor neuron, a poor basis for the
            value: ``{"wiring": "full"}`` gives the critic a fully connected cell of the
            same size with all ``units`` read out, ``{"cell": "lstm", "units": 64}`` an
            LSTM. Needs ``enable_critic_lstm=True``. Default None: the actor's spec.
        dt_key: key of the elapsed time in a Dict observation (shape (1,)); when present the
            cells integrate over it. ``None`` ignores it.
        dt_unit: elapsed time that counts as one step of the cell (e.g. the env's nominal
            step in seconds): the cell sees ``dt / dt_unit``, so a constant ``dt == dt_unit``
            gives the same outputs as no dt at all. A ``dt <= 0`` (the first observation of an
            episode under ``IrregularTime``, or padding) counts as ``step_time``.
        step_time: elapsed time of one env step in cell units where the observation gives
            none (no dt entry, or dt <= 0). 1.0 is ncps' default. An LTC starts with time
            constants of about 0.1 step (``LTCCell.time_constants``), so at 1.0 its state
            settles within each step and carries little from one step to the next; a
            smaller value (e.g. 0.1) keeps more of it.
        core_inputs: what the cores read each step: "obs" and optionally "prev_action",
            "prev_reward" (pomdp-baselines, RLlib's lstm_use_prev_*). Those two travel in the
            observation: wrap the VecEnv in ``liquid_rl.core_inputs.PreviousActionReward``
            (zeros at episode starts), so RecurrentPPO's rollout buffer, its training
            minibatches and ``predict`` see them with no extra state. Default ``("obs",)``.
        input_embeddings: embedding size per input (e.g. ``{"obs": 32, "prev_action": 16,
            "prev_reward": 16}``); inputs without one enter raw. Actor and critic cores
            each have their own embeddings.
        embedding_layer_norm: LayerNorm after each embedding.
        **cell_options: the cell's own options (LTC: ode_unfolds, solver, mixed_memory, ...;
            CfC: mode, backbone_units, ...; wired: seed, sparsity_level).
        Other arguments: as ``sb3_contrib``'s ``RecurrentActorCriticPolicy``.

    Raises:
        ValueError: one line naming the bad argument and the allowed values, for every bad
            argument or combination (e.g. ``shared_lstm=True`` with ``enable_critic_lstm=True``).
            sb3-contrib raises AssertionError for those; ours stay ValueError because asserts
            vanish under ``python -O`` and a user's input is not an internal invariant.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        cell: str = "ltc",
        units: int = 32,
        wiring: str | Wiring | dict[str, Any] = "full",
        output_size: int | None = None,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        shared_lstm: bool = False,
        enable_critic_lstm: bool = True,
        critic_core: dict[str, Any] | None = None,
        dt_key: str | None = "dt",
        dt_unit: float = 1.0,
        step_time: float = 1.0,
        core_inputs: tuple[str, ...] | list[str] = ("obs",),
        input_embeddings: dict[str, int] | None = None,
        embedding_layer_norm: bool = False,
        **cell_options: Any,
    ) -> None:
        for key, instead in _LSTM_ONLY.items():
            if key in cell_options:
                raise ValueError(f"{type(self).__name__} has no {key!r} (an LSTM option); use {instead} instead")
        check_cell(cell)
        check_units(units)
        check_wiring(wiring)
        if shared_lstm and enable_critic_lstm:
            raise ValueError("shared_lstm=True needs enable_critic_lstm=False: choose a shared, separate "
                             "or no cell for the critic")
        if shared_lstm and not share_features_extractor:
            raise ValueError("shared_lstm=True needs share_features_extractor=True")
        if not float(dt_unit) > 0:
            raise ValueError(f"dt_unit must be > 0 (elapsed time of one cell step), got {dt_unit!r}")
        self._check_observation_space(observation_space, dt_key, normalize_images)
        self.core_inputs = check_core_inputs(core_inputs)
        self.input_embeddings = dict(input_embeddings or {})
        self.embedding_layer_norm = bool(embedding_layer_norm)
        self.n_extra = extra_size(self.core_inputs, action_space)
        if self.n_extra and isinstance(observation_space, spaces.Dict):
            raise ValueError(f"core_inputs {list(self.core_inputs)} take a flat Box observation "
                             "(PreviousActionReward), not a Dict")
        self.obs_space = observation_part(observation_space, self.n_extra)
        self.core_spec = CoreSpec.create(cell, units, wiring, output_size, cell_options,
                                         action_output_size(action_space), step_time)
        self.critic_core = None if critic_core is None else dict(critic_core)
        self.critic_spec = self._critic_spec(action_output_size(action_space), enable_critic_lstm)
        self.cell, self.units, self.wiring = cell, int(units), wiring
        self.cell_options = dict(cell_options)
        self.dt_key, self.dt_unit, self.step_time = dt_key, float(dt_unit), self.core_spec.step_time
        self._dt_in_obs = (isinstance(observation_space, spaces.Dict) and dt_key is not None
                           and dt_key in observation_space.spaces)
        self.output_size = self.core_spec.output_size
        self.lstm_output_dim = self.output_size  # read by _build_mlp_extractor
        if net_arch is None:
            net_arch = dict(pi=[], vf=[])
        # ActorCriticPolicy builds the features extractor, mlp_extractor and heads; the
        # cores replace the LSTMs that RecurrentActorCriticPolicy.__init__ would build.
        ActorCriticPolicy.__init__(
            self, observation_space, action_space, lr_schedule, net_arch, activation_fn, ortho_init,
            use_sde, log_std_init, full_std, use_expln, squash_output, features_extractor_class,
            features_extractor_kwargs, share_features_extractor, normalize_images, optimizer_class,
            optimizer_kwargs,
        )
        self.lstm_kwargs: dict[str, Any] = {}
        self.shared_lstm = shared_lstm
        self.enable_critic_lstm = enable_critic_lstm
        self.inputs_pi = self._make_inputs()
        self.inputs_vf = self._make_inputs()
        actor, critic = self.core_spec.build(self.inputs_pi.output_size), None
        if enable_critic_lstm:
            critic = self.critic_spec.build(self.inputs_vf.output_size)
        hidden = max(CoreAsLSTM.pair_size(c.state_size) for c in (actor, critic) if c is not None)
        self.lstm_actor = CoreAsLSTM(actor, hidden).to(self.device)
        self.lstm_critic = None if critic is None else CoreAsLSTM(critic, hidden).to(self.device)
        self.critic = (None if (shared_lstm or enable_critic_lstm)
                       else nn.Linear(self.inputs_vf.output_size, self.output_size))
        # For predict(): the shape of one env's (h, c) entries.
        self.lstm_hidden_state_shape = (1, 1, self.lstm_actor.hidden_size)
        # The optimizer built by ActorCriticPolicy does not know the cores: rebuild it.
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    # --- construction ----------------------------------------------------------------
    def _check_observation_space(self, observation_space: spaces.Space, dt_key: str | None,
                                 normalize_images: bool = True) -> None:
        """Raise ValueError if this policy class cannot take ``observation_space``."""
        if isinstance(observation_space, spaces.Dict):
            raise ValueError(f"{type(self).__name__} cannot take a Dict observation space ({observation_space}); "
                             "use MultiInputLiquidRecurrentPolicy")
        if not isinstance(observation_space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
            raise ValueError(f"{type(self).__name__} cannot take the observation space {observation_space}; "
                             "it takes Box, Discrete, MultiDiscrete or MultiBinary (Dict: MultiInputLiquidRecurrentPolicy)")

    def _make_inputs(self) -> CoreInputs:
        """What a core reads: the features, and the previous action and reward if asked."""
        action_size = action_input_size(self.action_space) if "prev_action" in self.core_inputs else 0
        return CoreInputs(self.core_inputs, self.features_dim, action_size, self.input_embeddings,
                          self.embedding_layer_norm).to(self.device)

    def _critic_spec(self, default_wired: int, enable_critic_lstm: bool) -> CoreSpec:
        """The critic core's spec: the actor's (``self.core_spec``), with the keys of
        ``self.critic_core`` replaced."""
        actor = self.core_spec
        if self.critic_core is None:
            return actor
        if not enable_critic_lstm:
            raise ValueError("critic_core needs enable_critic_lstm=True (the critic's own core); "
                             "drop critic_core or set enable_critic_lstm=True")
        given = dict(self.critic_core)
        cell = given.pop("cell", actor.cell)
        units = given.pop("units", actor.units)
        wiring = given.pop("wiring", actor.wiring if cell == actor.cell else "full")
        changed = (cell, units, wiring) != (actor.cell, actor.units, actor.wiring)
        output_size = given.pop("output_size", None if changed else actor.output_size)
        options = {**actor.options, **given} if cell == actor.cell else given
        try:
            return CoreSpec.create(cell, units, wiring, output_size, options, default_wired, actor.step_time)
        except ValueError as e:
            raise ValueError(f"critic_core: {e}") from None

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        vf_dim = self.critic_spec.output_size
        if vf_dim != self.lstm_output_dim:  # a critic core of its own reads out another size
            critic = MlpExtractor(vf_dim, net_arch=self.net_arch, activation_fn=self.activation_fn,
                                  device=self.device)
            self.mlp_extractor.value_net = critic.value_net
            self.mlp_extractor.latent_dim_vf = critic.latent_dim_vf

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """The features extractor sees the observation without its elapsed-time entry
        and without the previous action and reward (those join after it)."""
        space = self.obs_space
        if self._dt_in_obs:
            assert isinstance(space, spaces.Dict)
            space = spaces.Dict({k: v for k, v in space.spaces.items() if k != self.dt_key})
        return self.features_extractor_class(space, **self.features_extractor_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(cell=self.cell, units=self.units, wiring=self.wiring, output_size=self.output_size,
                    net_arch=self.net_arch, shared_lstm=self.shared_lstm,
                    enable_critic_lstm=self.enable_critic_lstm, critic_core=self.critic_core, dt_key=self.dt_key, dt_unit=self.dt_unit,
                    step_time=self.step_time, core_inputs=self.core_inputs,
                    input_embeddings=self.input_embeddings, embedding_layer_norm=self.embedding_layer_norm,
                    **self.cell_options)
        return data

    # --- sequences -------------------------------------------------------------------
    def _timespans(self, obs: PyTorchObs) -> Tensor | None:
        """Elapsed time per sample (N, 1) in cell units; None for one unit per step."""
        if not self._dt_in_obs:
            if self.core_spec.timespan is None:
                return None
            first = next(iter(obs.values())) if isinstance(obs, dict) else obs
            return th.full((first.shape[0], 1), self.step_time, device=first.device)
        assert isinstance(obs, dict)
        dt = obs[self.dt_key].reshape(-1, 1).float()
        return th.where(dt > 0, dt / self.dt_unit, th.full_like(dt, self.step_time))

    def _process_sequence(  # type: ignore[override]
        self,
        features: Tensor,
        lstm_states: LSTMState,
        episode_starts: Tensor,
        lstm: CoreAsLSTM,
        timespans: Tensor | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """Run the core over a batch of padded sequences in one call.

        Args:
            features: (n_seq * T, F), sequence-major (SB3's padded layout; T = 1 in rollouts).
            lstm_states: (h, c), each (1, n_seq, hidden_size): the state before each sequence.
            episode_starts: (n_seq * T,) 1.0 where the state is zeroed before the step.
            lstm: the core.
            timespans: (n_seq * T, 1) elapsed time per step, or None (one unit per step).
        Returns:
            latent (n_seq * T, O) and the final (h, c).
        """
        n_seq = lstm_states[0].shape[1]
        x = features.reshape(n_seq, -1, lstm.input_size).transpose(0, 1)        # (T, n_seq, F)
        resets = episode_starts.reshape(n_seq, -1).transpose(0, 1) > 0.5        # (T, n_seq)
        ts = None if timespans is None else timespans.reshape(n_seq, -1, 1).transpose(0, 1)
        y, states = lstm(x, lstm_states, ts, resets)
        return y.transpose(0, 1).reshape(-1, lstm.output_size), states

    def _latent_pi(self, features: Tensor, states: LSTMState, episode_starts: Tensor,
                   timespans: Tensor | None) -> tuple[Tensor, LSTMState]:
        return self._process_sequence(features, states, episode_starts, self.lstm_actor, timespans)

    def _latent_vf(self, features: Tensor, states: LSTMState, episode_starts: Tensor, timespans: Tensor | None,
                   latent_pi: Tensor | None = None, states_pi: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """Critic latent: its own core, the actor's (detached) or a Linear layer."""
        if self.lstm_critic is not None:
            return self._process_sequence(features, states, episode_starts, self.lstm_critic, timespans)
        if self.shared_lstm:
            if latent_pi is None or states_pi is None:
                latent_pi, states_pi = self._latent_pi(features, states, episode_starts, timespans)
            return latent_pi.detach(), (states_pi[0].detach(), states_pi[1].detach())
        assert self.critic is not None
        return self.critic(features), (states if states_pi is None else states_pi)

    def _extract(self, obs: PyTorchObs, extractor: BaseFeaturesExtractor) -> tuple[Tensor, Tensor]:
        """Features of the observation part (N, F) and the previous action and reward
        (N, E; E = 0 unless ``core_inputs`` has them)."""
        extra = None
        if self.n_extra:
            assert isinstance(obs, Tensor)
            obs, extra = split_observation(obs, self.n_extra)
        if isinstance(obs, Tensor) and not isinstance(extractor, FlattenExtractor):
            features = extract_zero_rows_once(lambda x: BaseModel.extract_features(self, x, extractor), obs)
        else:
            features = BaseModel.extract_features(self, obs, extractor)
        return features, (features[..., :0] if extra is None else extra)

    def _core_features(self, obs: PyTorchObs, extractor: BaseFeaturesExtractor, inputs: CoreInputs) -> Tensor:
        """The core's input per sample (N, I): features of the observation part, joined
        with the previous action and reward where ``core_inputs`` has them."""
        return inputs(*self._extract(obs, extractor))

    def _split_features(self, obs: PyTorchObs) -> tuple[Tensor, Tensor]:
        if self.share_features_extractor:  # one extractor pass for both cores
            features, extra = self._extract(obs, self.features_extractor)
            return self.inputs_pi(features, extra), self.inputs_vf(features, extra)
        return (self._core_features(obs, self.pi_features_extractor, self.inputs_pi),
                self._core_features(obs, self.vf_features_extractor, self.inputs_vf))

    # --- SB3 entry points ------------------------------------------------------------
    def forward(self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: Tensor,
                deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor, RNNStates]:
        pi_features, vf_features = self._split_features(obs)
        ts = self._timespans(obs)
        latent_pi, states_pi = self._latent_pi(pi_features, lstm_states.pi, episode_starts, ts)
        latent_vf, states_vf = self._latent_vf(vf_features, lstm_states.vf, episode_starts, ts, latent_pi, states_pi)
        latent_pi = self.mlp_extractor.forward_actor(latent_pi)
        latent_vf = self.mlp_extractor.forward_critic(latent_vf)
        values = self.value_net(latent_vf)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, values, log_prob, RNNStates(states_pi, states_vf)

    def get_distribution(self, obs: PyTorchObs, lstm_states: LSTMState,  # type: ignore[override]
                         episode_starts: Tensor) -> tuple[Distribution, LSTMState]:
        features = self._core_features(obs, self.pi_features_extractor, self.inputs_pi)
        latent_pi, states = self._latent_pi(features, lstm_states, episode_starts, self._timespans(obs))
        return self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi)), states

    def predict_values(self, obs: PyTorchObs, lstm_states: LSTMState,  # type: ignore[override]
                       episode_starts: Tensor) -> Tensor:
        features = self._core_features(obs, self.vf_features_extractor, self.inputs_vf)
        latent_vf, _ = self._latent_vf(features, lstm_states, episode_starts, self._timespans(obs))
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf))

    def evaluate_actions(self, obs: PyTorchObs, actions: Tensor, lstm_states: RNNStates,  # type: ignore[override]
                         episode_starts: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        pi_features, vf_features = self._split_features(obs)
        ts = self._timespans(obs)
        latent_pi, states_pi = self._latent_pi(pi_features, lstm_states.pi, episode_starts, ts)
        latent_vf, _ = self._latent_vf(vf_features, lstm_states.vf, episode_starts, ts, latent_pi, states_pi)
        distribution = self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi))
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        return values, distribution.log_prob(actions), distribution.entropy()

    # --- inspection ------------------------------------------------------------------
    def flat_state(self, state: tuple[np.ndarray, np.ndarray] | LSTMState, critic: bool = False) -> Tensor:
        """The cell state (B, S) inside a ``predict`` state pair ``(h, c)`` (or a rollout's)."""
        h, c = (th.as_tensor(s, dtype=th.float32) for s in state)
        core = self.lstm_critic if (critic and self.lstm_critic is not None) else self.lstm_actor
        return core.unpack((h, c))


class CnnLiquidRecurrentPolicy(LiquidRecurrentPolicy):
    """:class:`LiquidRecurrentPolicy` for image observations (H, W, C) or (C, H, W): the
    NCP paper's conv head (``liquid_rl.conv.NCPConvExtractor``, 32 features) feeds the cell.

    Images are uint8 in [0, 255] (divided by 255), or, with ``normalize_images=False``,
    already scaled floats of any dtype and bounds (e.g. after ``VecNormalize``), as with
    sb3-contrib's ``CnnLstmPolicy``. Float images must be channels first (C, H, W): SB3
    transposes only uint8 images (``VecTransposeImage``).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NCPConvExtractor,
                 features_extractor_kwargs: dict[str, Any] | None = None, normalize_images: bool = True,
                 **kwargs: Any) -> None:
        features_extractor_kwargs = dict(features_extractor_kwargs or {})
        if not normalize_images and issubclass(features_extractor_class, NCPConvExtractor):
            features_extractor_kwargs.setdefault("normalized_image", True)  # as SB3 does for NatureCNN
        super().__init__(observation_space, action_space, lr_schedule, *args,
                         features_extractor_class=features_extractor_class,
                         features_extractor_kwargs=features_extractor_kwargs,
                         normalize_images=normalize_images, **kwargs)

    def _check_observation_space(self, observation_space: spaces.Space, dt_key: str | None,
                                 normalize_images: bool = True) -> None:
        if not is_image_space(observation_space, check_channels=False, normalized_image=not normalize_images):
            raise ValueError(f"{type(self).__name__} needs an image observation space (Box uint8 (H, W, C) or "
                             f"(C, H, W) in [0, 255], or any Box (C, H, W) with normalize_images=False); "
                             f"got {observation_space}. Use LiquidRecurrentPolicy for vectors")


class MultiInputLiquidRecurrentPolicy(LiquidRecurrentPolicy):
    """:class:`LiquidRecurrentPolicy` for Dict observations (``CombinedExtractor`` by
    default). A ``dt_key`` entry ("dt") is taken out of the features and given to the
    cells as the elapsed time of each step."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
                 **kwargs: Any) -> None:
        super().__init__(observation_space, action_space, lr_schedule, *args,
                         features_extractor_class=features_extractor_class, **kwargs)

    def _check_observation_space(self, observation_space: spaces.Space, dt_key: str | None,
                                 normalize_images: bool = True) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(f"{type(self).__name__} needs a Dict observation space; got {observation_space}. "
                             "Use LiquidRecurrentPolicy (vectors) or CnnLiquidRecurrentPolicy (images)")
        if set(observation_space.spaces) <= {dt_key}:
            raise ValueError(f"The Dict observation space {observation_space} has nothing but the elapsed "
                             f"time {dt_key!r} to observe")
        dt_space = observation_space.spaces.get(dt_key) if dt_key is not None else None
        if dt_space is not None and not (isinstance(dt_space, spaces.Box) and dt_space.shape == (1,)):
            raise ValueError(f"The elapsed time {dt_key!r} must be a Box of shape (1,); got {dt_space}")
