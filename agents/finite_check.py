"""A NaN/inf check on what flows between env and policy: stable-baselines3's
``VecCheckNan`` (observations and rewards from the env, actions from the policy) with its
error as one line naming where the bad value came from, so a bad sensor reading stops a
run with a clear message instead of turning every later action into NaN."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecCheckNan, VecEnv

from liquid_rl.agents.errors import UserError

__all__ = ["FiniteCheck"]


class FiniteCheck(VecCheckNan):
    """``VecCheckNan(raise_exception=True, check_inf=True)`` raising :class:`UserError`.

    Args:
        venv: the vectorised env.
        env_id: named in the message.
    """

    def __init__(self, venv: VecEnv, env_id: str) -> None:
        super().__init__(venv, raise_exception=True, warn_once=False, check_inf=True)
        self.env_id = env_id

    def _check_val(self, event: str, **kwargs: Any) -> None:
        try:
            super()._check_val(event, **kwargs)
        except ValueError as e:
            found = str(e).split(".\r\n")[0].split(".\n")[0]  # "found nan in observations"
            origin = {"reset": f"env {self.env_id} at reset", "step_wait": f"env {self.env_id}",
                      "step_async": "the policy"}.get(event, event)
            raise UserError(f"{found} from {origin}; a NaN or infinite value would spread through the "
                            "policy's state (train.check_finite: false or eval --no-finite-check turn this check off)") from None
