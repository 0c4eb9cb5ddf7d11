"""Recurrent SAC: Soft Actor-Critic with recurrent (liquid or LSTM) actor and critics.

Built on stable-baselines3's off-policy machinery, so ``learn`` (callbacks, logger,
TensorBoard, progress bar), ``save``/``load``, ``save_replay_buffer``/
``load_replay_buffer`` and several envs at once behave as for SB3's SAC. What differs:

- **Acting** carries the actor's recurrent state from step to step in each env and
  zeroes it when an episode starts (also during the random warm-up, so the stored
  states stay meaningful); ``predict(obs, state, episode_start, deterministic)``
  returns ``(action, state)`` as sb3-contrib's RecurrentPPO does.
- **Replay** stores transitions with episode starts (and, with
  ``burn_in_state="stored"``, the actor state before each step) in a
  :class:`~liquid_rl.agents.sequence_replay.SequenceReplayBuffer`, and samples
  ``batch_size`` windows of ``burn_in + sequence_length`` consecutive steps.
- **Burn-in**: the first ``burn_in`` steps of a window only rebuild the recurrent
  states (no gradient, not in the losses). The actor starts them from zero
  (``burn_in_state="zero"``) or from the state it had when it acted
  (``"stored"``, R2D2's stored state); the critics and target critics always start from
  zero (they do not run while acting) and rely on the burn-in.
- **Losses** are SAC's (twin Q with target critics and Polyak averaging, entropy
  temperature tuned towards ``target_entropy``), averaged over the ``sequence_length``
  learning steps of all windows with a mask. Windows may cross episode boundaries:
  the cores zero their state where an episode starts, a terminated step does not
  bootstrap, and a step truncated by a time limit inside the window is left out of the
  critic loss (the step after it belongs to the next episode, so its next history is
  not in the window); no loss term mixes two episodes.

Each of the T + 1 observations of a window (its T observations, then the next
observation of its last step) goes once through every core: one core call over the
whole batch for the burn-in and one for the rest, per network.

Previous action and reward (``policy_kwargs=dict(core_inputs=("obs", "prev_action",
"prev_reward"))``, pomdp-baselines' inputs): the env must be wrapped in
``liquid_rl.core_inputs.PreviousActionReward``, which appends them to the observation,
so that the replay stores exactly what the actor saw and ``predict`` needs no extra state.

Limits: Box actions and Box (or Discrete) observations; the cells advance one time unit
per env step (no elapsed-time input, unlike ``LiquidRecurrentPolicy``'s ``dt_key``);
no gSDE.
"""

from __future__ import annotations

import io
import pathlib
from copy import deepcopy
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import obs_as_tensor, polyak_update, update_learning_rate

from liquid_rl.agents.recurrent_sac_policy import RecurrentActor, RecurrentCritic, RecurrentSACPolicy
from liquid_rl.agents.sequence_replay import SequenceReplayBuffer, SequenceReplayBufferSamples
from liquid_rl.core_inputs import extras, find_previous_inputs

SelfRecurrentSAC = TypeVar("SelfRecurrentSAC", bound="RecurrentSAC")

BURN_IN_STATES = ("zero", "stored")


def masked_mean(x: th.Tensor, mask: th.Tensor) -> th.Tensor:
    """Mean of ``x`` over the entries where ``mask`` (same shape, 0/1) is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def loss_masks(data: SequenceReplayBufferSamples, burn_in: int) -> tuple[th.Tensor, th.Tensor]:
    """Which learning steps (the last L of each window) enter the losses.

    Returns ``(mask, critic_mask)``, each (L, B): ``mask`` is the buffer's mask after
    the burn-in (actor and temperature losses). ``critic_mask`` also drops the steps
    whose TD target would need a next history that the window does not hold: the
    history after step t is the core output at position t + 1, which is right only if
    step t was not truncated and step t + 1 is stored data of the same episode; the
    window's last step has its own next observation at position T. Terminated steps
    need no next history (no bootstrap).
    """
    mask = data.mask[burn_in:]
    next_ok = th.ones_like(mask)
    next_ok[:-1] = (1.0 - data.truncations[burn_in:-1]) * data.mask[burn_in + 1:]
    critic_mask = mask * th.maximum(next_ok, data.terminations[burn_in:])
    return mask, critic_mask


class RecurrentSAC(OffPolicyAlgorithm):
    """Soft Actor-Critic with recurrent actor and critics, trained on sequences.

    The arguments are SAC's (``learning_rate`` ... ``device``), except that
    ``batch_size`` counts sequences, plus:

    :param sequence_length: L, steps of each sampled window that enter the losses.
    :param burn_in: steps before them that only rebuild the recurrent states.
    :param burn_in_state: where the actor's burn-in starts: "zero" or "stored" (the
        state it had when acting, kept in the replay buffer).
    :param cross_episodes: sample windows across episode boundaries (the cores reset
        at episode starts); False masks out the steps of any other episode than the one
        of the first learning step.
    :param max_grad_norm: clip the actor's and the critic's gradient norms to this before
        each step (backpropagation through time can spike them); None, SAC's way, clips
        nothing. The norms before clipping are always logged as ``train/actor_grad_norm``
        and ``train/critic_grad_norm``, beside the temperature ``train/ent_coef``.
    :param actor_learning_rate, critic_learning_rate: constant learning rates of the actor
        and of the critic (cores, embeddings and heads), instead of ``learning_rate``'s
        schedule (which the entropy temperature keeps); None: ``learning_rate``.

    ``policy_kwargs`` go to :class:`~liquid_rl.agents.recurrent_sac_policy.RecurrentSACPolicy`:
    ``cell`` ("cfc", "ltc", "lstm", "liquid_s4", ...), ``units``, ``wiring``,
    ``output_size`` and the cell's own options, as for ``LiquidRecurrentPolicy``;
    ``critic_cell``, ``critic_units``, ... for other critic cores; ``net_arch``, ...
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "RecurrentSACPolicy": RecurrentSACPolicy,
        "MlpPolicy": RecurrentSACPolicy,
    }
    policy: RecurrentSACPolicy
    actor: RecurrentActor
    critic: RecurrentCritic
    critic_target: RecurrentCritic
    replay_buffer: SequenceReplayBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[RecurrentSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[SequenceReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        sequence_length: int = 32,
        burn_in: int = 8,
        burn_in_state: str = "zero",
        cross_episodes: bool = True,
        max_grad_norm: float | None = None,
        actor_learning_rate: float | None = None,
        critic_learning_rate: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if replay_buffer_class is not None and not issubclass(replay_buffer_class, SequenceReplayBuffer):
            raise ValueError(f"RecurrentSAC needs a SequenceReplayBuffer, got replay_buffer_class={replay_buffer_class}")
        if burn_in_state not in BURN_IN_STATES:
            raise ValueError(f"burn_in_state must be one of {list(BURN_IN_STATES)}, got {burn_in_state!r}")
        if int(sequence_length) < 1 or int(burn_in) < 0:
            raise ValueError(f"need sequence_length >= 1 and burn_in >= 0, got {sequence_length} and {burn_in}")
        if max_grad_norm is not None and not float(max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None (no clipping), got {max_grad_norm}")
        for name, lr in (("actor_learning_rate", actor_learning_rate), ("critic_learning_rate", critic_learning_rate)):
            if lr is not None and not 0 < float(lr) <= 1:
                raise ValueError(f"{name} must be in (0, 1] or None (learning_rate), got {lr}")
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class or SequenceReplayBuffer,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        self.sequence_length = int(sequence_length)
        self.burn_in = int(burn_in)
        self.burn_in_state = burn_in_state
        self.cross_episodes = bool(cross_episodes)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.actor_learning_rate = None if actor_learning_rate is None else float(actor_learning_rate)
        self.critic_learning_rate = None if critic_learning_rate is None else float(critic_learning_rate)
        self.target_entropy = target_entropy
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef = ent_coef
        self.target_update_interval = target_update_interval
        self.ent_coef_optimizer: th.optim.Adam | None = None
        # Acting: the actor state of each env (n_envs, S), and the state before the
        # current step, which the replay buffer keeps for "stored" burn-in.
        self._actor_state: th.Tensor | None = None
        self._acting_start_state: np.ndarray | None = None
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if isinstance(self.observation_space, spaces.Dict):
            raise ValueError("RecurrentSAC does not support Dict observation spaces")
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        **self.policy_kwargs).to(self.device)
        self._create_aliases()
        if self.replay_buffer is None:
            kwargs = dict(self.replay_buffer_kwargs)
            kwargs.update(sequence_length=self.sequence_length, burn_in=self.burn_in,
                          cross_episodes=self.cross_episodes,
                          state_size=self.actor.state_size if self.burn_in_state == "stored" else 0)
            assert self.replay_buffer_class is not None
            self.replay_buffer = self.replay_buffer_class(  # type: ignore[call-arg]
                self.buffer_size, self.observation_space, self.action_space,
                device=self.device, n_envs=self.n_envs, **kwargs,
            )
        self._convert_train_freq()

        # Entropy temperature, as SAC: learned (ent_coef="auto" or "auto_<init>") or fixed.
        if self.target_entropy == "auto":
            self.target_entropy = float(-np.prod(self.action_space.shape).astype(np.float32))  # type: ignore[arg-type]
        else:
            self.target_entropy = float(self.target_entropy)
        if isinstance(self.ent_coef, str) and self.ent_coef.startswith("auto"):
            init_value = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            if init_value <= 0.0:
                raise ValueError(f"the initial ent_coef must be > 0, got {init_value}")
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * init_value).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(float(self.ent_coef), device=self.device)

    def _check_previous_inputs(self, env: Any) -> None:
        """With a previous action or reward in ``core_inputs``, the env that collects must
        append them (a loaded model may be built on a stand-in with the same spaces)."""
        wanted = extras(self.policy.core_inputs)
        if env is None or not wanted:
            return
        wrapper = find_previous_inputs(env)
        if wrapper is None or wrapper.inputs != wanted:
            raise ValueError(f"core_inputs {list(self.policy.core_inputs)} need the env wrapped in "
                             f"liquid_rl.core_inputs.PreviousActionReward(venv, {list(wanted)})")

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    # ------------------------------------------------------------------ training
    def train(self, gradient_steps: int, batch_size: int = 32) -> None:
        """``gradient_steps`` SAC updates, each on ``batch_size`` sampled windows."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        for optimizer, lr in ((self.actor.optimizer, self.actor_learning_rate),
                              (self.critic.optimizer, self.critic_learning_rate)):
            if lr is not None:
                update_learning_rate(optimizer, lr)

        b = self.burn_in  # steps 0..b-1 of a window: burn-in; b..T-1: the L learning steps
        ent_coef_losses, ent_coefs, actor_losses, critic_losses = [], [], [], []
        grad_norms: dict[str, list[float]] = {"actor": [], "critic": []}
        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            # The cores read T + 1 observations: the window's T, then the next observation
            # of its last step. The output at position t + 1 is the history after step t.
            obs = th.cat([data.observations, data.next_observations[-1:]])  # (T+1, B, *obs)
            resets = th.cat([data.resets, th.zeros_like(data.resets[:1])])  # (T+1, B)
            if self.burn_in_state == "stored":
                assert data.start_states is not None
                start_state = data.start_states
            else:
                start_state = self.actor.initial_state(obs.shape[1])

            actions = data.actions[b:]  # (L, B, A), learning steps from here on
            rewards, terminations = data.rewards[b:], data.terminations[b:]  # (L, B)
            mask, critic_mask = loss_masks(data, b)  # (L, B) each: steps in the actor / critic losses

            # Actor over the learning steps and one more: position t gives pi(.|h_t) for
            # the actor loss, position t + 1 gives the next action of the TD target.
            latent_pi = self.actor.unroll(obs, start_state, resets, b)  # (L+1, B, O)
            actions_pi, log_prob = self.actor.action_log_prob(latent_pi)  # (L+1, B, A), (L+1, B)

            # Entropy temperature (alpha)
            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -masked_mean(self.log_ent_coef * (log_prob[:-1] + self.target_entropy).detach(), mask)
                ent_coef_losses.append(ent_coef_loss.item())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.item())

            # TD target: target critics run their own cores over the whole window.
            with th.no_grad():
                next_latents = [y[1:] for y in self.critic_target.unroll(obs, resets, b)]  # (L, B, O)
                next_q = th.stack(self.critic_target.q_values(next_latents, actions_pi[1:]), dim=-1).min(-1).values
                next_q = next_q - ent_coef * log_prob[1:]
                target_q = rewards + (1.0 - terminations) * self.gamma * next_q  # (L, B)

            # Critic loss on the replayed actions
            latents_q = self.critic.unroll(obs[:-1], resets[:-1], b)  # n_critics x (L, B, O)
            current_q = self.critic.q_values(latents_q, actions)
            critic_loss = 0.5 * sum(masked_mean((q - target_q) ** 2, critic_mask) for q in current_q)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())

            # Actor loss: the critic's histories (detached) with the actor's actions
            q_pi = self.critic.q_values([y.detach() for y in latents_q], actions_pi[:-1])
            min_q_pi = th.stack(q_pi, dim=-1).min(-1).values
            actor_loss = masked_mean(ent_coef * log_prob[:-1] - min_q_pi, mask)
            actor_losses.append(actor_loss.item())

            # Both losses come from the same parameters; the critic's gradients are
            # cleared after the actor's backward pass (which also reaches the Q MLPs).
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            clip = self.max_grad_norm if self.max_grad_norm is not None else float("inf")
            for name, net in (("actor", self.actor), ("critic", self.critic)):
                grad_norms[name].append(th.nn.utils.clip_grad_norm_(net.parameters(), clip).item())
            self.critic.optimizer.step()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        for name, norms in grad_norms.items():
            if norms:
                self.logger.record(f"train/{name}_grad_norm", np.mean(norms))

    # ------------------------------------------------------------------ acting
    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, Any]:
        env_resets = reset_num_timesteps or self._last_obs is None
        if env_resets and self.replay_buffer is not None:
            # the next stored step will not follow the newest one: end its episodes there
            self.replay_buffer.truncate_last_step()
        self._check_previous_inputs(self.env)
        out = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        assert self.env is not None
        if env_resets or self._actor_state is None or self._actor_state.shape[0] != self.env.num_envs:
            self._actor_state = self.actor.initial_state(self.env.num_envs)
            self._last_episode_starts = np.ones(self.env.num_envs, dtype=bool)
        return out

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step the actor's core on the current observations (carrying its state) and
        return (env action, scaled action for the buffer), as SB3's ``_sample_action``.
        Before ``learning_starts`` the action is uniform, but the state still advances."""
        assert self._last_obs is not None and self._actor_state is not None
        self.policy.set_training_mode(False)
        starts = th.as_tensor(np.asarray(self._last_episode_starts, dtype=bool), device=self.device)
        with th.no_grad():
            obs = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
            state_before = self._actor_state * (~starts).unsqueeze(-1).to(self._actor_state.dtype)
            actions, self._actor_state = self.actor.act(obs, self._actor_state, starts, deterministic=False)
        self._acting_start_state = state_before.cpu().numpy()

        if self.num_timesteps < learning_starts:
            scaled_action = self.policy.scale_action(np.array([self.action_space.sample() for _ in range(n_envs)]))
        else:
            scaled_action = actions.cpu().numpy().reshape((n_envs, *self.action_space.shape))
        if action_noise is not None:
            scaled_action = np.clip(scaled_action + action_noise(), -1, 1)
        return self.policy.unscale_action(scaled_action), scaled_action

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """SB3's ``_store_transition`` (terminal observations, VecNormalize), plus the
        episode start of each stored step and, for "stored" burn-in, the actor state."""
        if self._vec_normalize_env is not None:
            new_obs_ = self._vec_normalize_env.get_original_obs()
            reward_ = self._vec_normalize_env.get_original_reward()
        else:
            self._last_original_obs, new_obs_, reward_ = self._last_obs, new_obs, reward
        next_obs = deepcopy(new_obs_)
        for i, done in enumerate(dones):
            if done and infos[i].get("terminal_observation") is not None:
                next_obs[i] = infos[i]["terminal_observation"]  # type: ignore[index]
                if self._vec_normalize_env is not None:
                    next_obs[i] = self._vec_normalize_env.unnormalize_obs(next_obs[i, :])  # type: ignore[index,call-overload]
        assert isinstance(replay_buffer, SequenceReplayBuffer)
        replay_buffer.add(
            self._last_original_obs,  # type: ignore[arg-type]
            next_obs,  # type: ignore[arg-type]
            buffer_action,
            reward_,
            dones,
            infos,
            episode_start=self._last_episode_starts,
            state=self._acting_start_state if replay_buffer.state_size > 0 else None,
        )
        self._last_obs = new_obs
        self._last_episode_starts = np.asarray(dones, dtype=bool).copy()
        if self._vec_normalize_env is not None:
            self._last_original_obs = new_obs_

    # ------------------------------------------------------------------ public API
    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions and the next actor state; see :meth:`RecurrentSACPolicy.predict`.

        :param observation: (n_envs, *obs_shape) or one unbatched observation.
        :param state: (n_envs, S) returned by the previous call, ``None`` at the start.
        :param episode_start: (n_envs,) bool, True where an episode starts.
        :param deterministic: return the mean actions.
        :return: (actions, state (n_envs, S)).
        """
        return self.policy.predict(observation, state, episode_start, deterministic)

    def learn(
        self: SelfRecurrentSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "RecurrentSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentSAC:
        return super().learn(total_timesteps=total_timesteps, callback=callback, log_interval=log_interval,
                             tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                             progress_bar=progress_bar)

    def load_replay_buffer(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        truncate_last_traj: bool = True,
    ) -> None:
        """Load a replay buffer saved by :meth:`save_replay_buffer`.

        :param truncate_last_traj: end the newest stored episodes as truncations, since
            the steps collected next come from freshly reset envs (the default). False
            keeps them open, for a buffer saved and loaded within one uninterrupted run.
        """
        super().load_replay_buffer(path, truncate_last_traj)
        if not isinstance(self.replay_buffer, SequenceReplayBuffer):
            raise ValueError(f"RecurrentSAC needs a SequenceReplayBuffer, loaded {type(self.replay_buffer).__name__}")
        if truncate_last_traj:
            self.replay_buffer.truncate_last_step()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target",
                "_actor_state", "_acting_start_state"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            saved_pytorch_variables = ["log_ent_coef"]
            state_dicts.append("ent_coef_optimizer")
        else:
            saved_pytorch_variables = ["ent_coef_tensor"]
        return state_dicts, saved_pytorch_variables
