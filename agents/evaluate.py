"""Evaluate an agent: N episodes, mean and std of return and length, optional video and
observation noise (robustness, as in the NCP paper's noise experiments)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from liquid_rl.agents.atomic_files import atomic_write_text
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.safe_load import Agent, load_agent

__all__ = ["run_episodes", "evaluate", "summarize", "write_video", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".gif")


def run_episodes(model: BaseAlgorithm, venv: VecEnv, episodes: int, deterministic: bool = True,
                 on_episode: Callable[[float, int], None] | None = None,
                 frames: list[np.ndarray] | None = None) -> tuple[list[float], list[int]]:
    """Run ``model`` on ``venv`` until ``episodes`` episodes have finished.

    Returns (returns, lengths) as the env's ``Monitor`` counted them (raw rewards, before
    any normalisation). A recurrent policy's state is carried across steps and reset at
    episode starts. ``frames``, if given, receives the rendered frames of the first
    episode of env 0 (the env must have ``render_mode="rgb_array"``).
    """
    returns: list[float] = []
    lengths: list[int] = []
    obs = venv.reset()
    state = None
    starts = np.ones((venv.num_envs,), dtype=bool)
    recording = frames is not None
    if recording:
        frames.append(_frame(venv))  # type: ignore[union-attr]
    while len(returns) < episodes:
        action, state = model.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
        obs, _, dones, infos = venv.step(action)
        starts = dones
        if recording and not dones[0]:
            frames.append(_frame(venv))  # type: ignore[union-attr]
        for i, done in enumerate(dones):
            if not done:
                continue
            if i == 0:
                recording = False
            ep = infos[i].get("episode")
            if ep is None:
                raise RuntimeError("the env has no Monitor wrapper: episode returns are unknown")
            returns.append(float(ep["r"]))
            lengths.append(int(ep["l"]))
            if on_episode is not None:
                on_episode(returns[-1], lengths[-1])
            if len(returns) >= episodes:
                break
    return returns[:episodes], lengths[:episodes]


def _frame(venv: VecEnv) -> np.ndarray:
    images = venv.get_images()
    if not images or images[0] is None:
        raise UserError("the env renders no frames (render_mode 'rgb_array' unsupported?)")
    return np.asarray(images[0])


def summarize(returns: list[float], lengths: list[int]) -> dict[str, float]:
    """Mean and (population) std of returns and lengths."""
    r, n = np.asarray(returns, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    return {"mean_return": float(r.mean()), "std_return": float(r.std()),
            "mean_length": float(n.mean()), "std_length": float(n.std())}


def write_video(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write frames (H, W, 3) uint8 to an ``.mp4`` (H.264 via imageio-ffmpeg) or ``.gif``."""
    import imageio.v2 as imageio

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".gif":
        imageio.mimsave(p, frames, duration=1000.0 / fps, loop=0)
        return p
    # H.264 needs even sizes; pad by a pixel if needed
    h, w = frames[0].shape[:2]
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = [np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge") for f in frames]
    with imageio.get_writer(p, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))
    return p


def _check_video_path(video: str | Path) -> None:
    if Path(video).suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--video {video}: the file name must end in {' or '.join(VIDEO_SUFFIXES)}")
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise UserError("--video needs the imageio package (pip install imageio imageio-ffmpeg)") from None
    if Path(video).suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserError("--video .mp4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                            "or write a .gif") from None


def evaluate(source: Any, episodes: int = 10, deterministic: bool = True, video: str | Path | None = None,
             noise: float = 0.0, json_path: str | Path | None = None, seed: int = 0, device: str = "auto",
             progress: bool = False,
             perturb: Callable[[gym.Env], gym.Env] | None = None, backend: str = "torch",
             check_finite: bool = True) -> dict[str, Any]:
    """Evaluate a saved agent.

    Args:
        source: a run directory, a model file, or an :class:`~liquid_rl.agents.safe_load.Agent`.
        episodes: number of episodes (>= 1).
        deterministic: act with the mode of the action distribution.
        video: write the first episode to this ``.mp4`` (or ``.gif``).
        noise: standard deviation of Gaussian noise added to each raw observation entry
            (pixel units for images); 0 for none.
        json_path: write the results there as JSON.
        seed: seed of the evaluation envs (the same seed gives the same episodes).
        device: torch device.
        progress: show a progress bar over episodes (on a terminal only).
        perturb: wraps the raw env (a perturbation of ``liquid_rl.envs.wrappers``).
        backend: "torch" (``model.predict``) or "onnx" (the actor exported to ONNX, run by
            onnxruntime on the raw env; deterministic only).
        check_finite: stop with a :class:`UserError` at a NaN or infinite observation,
            reward or action (``liquid_rl.agents.finite_check``).

    Returns:
        ``{"mean_return", "std_return", "mean_length", "std_length", "returns", "lengths",
        "episodes", "deterministic", "noise", "seed", "env_id", "model", "num_timesteps"}``.

    Raises:
        UserError: bad arguments, or a model that cannot be loaded (see ``load_agent``).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserError(f"--episodes must be a positive integer, got {episodes!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise UserError(f"--noise must be a number >= 0 (standard deviation), got {noise!r}")
    if video is not None:
        _check_video_path(video)
        os.environ.setdefault("MUJOCO_GL", "egl")
    if backend not in ("torch", "onnx"):
        raise UserError(f"--backend must be torch or onnx, got {backend!r}")
    if backend == "onnx" and not deterministic:
        raise UserError("--backend onnx runs the exported deterministic actor; add --deterministic")
    agent = source if isinstance(source, Agent) else load_agent(source, device=device)
    env_kwargs = dict(n_envs=1, seed=seed, noise=float(noise), check_finite=check_finite,
                      render_mode="rgb_array" if video is not None else None, perturb=perturb)
    model: Any = agent.model
    if backend == "onnx":
        from liquid_rl.export import ExportError
        from liquid_rl.export.backend import onnx_predictor, raw_env

        try:
            model = onnx_predictor(agent)
        except ExportError as e:
            raise UserError(str(e)) from None
        venv = raw_env(agent, **env_kwargs)
    else:
        venv = agent.make_env(**env_kwargs)
    frames: list[np.ndarray] | None = [] if video is not None else None
    bar = None
    if progress and sys.stderr.isatty():  # in a log file a bar would share a line with the results
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes, desc="evaluating", unit="episode", leave=False)
    try:
        returns, lengths = run_episodes(model, venv, episodes, deterministic,
                                        on_episode=(lambda r, n: bar.update(1)) if bar is not None else None,
                                        frames=frames)
        fps = float(_render_fps(venv))
    finally:
        if bar is not None:
            bar.close()
        venv.close()
    result: dict[str, Any] = summarize(returns, lengths)
    result.update(returns=returns, lengths=lengths, episodes=episodes, deterministic=deterministic,
                  noise=float(noise), seed=seed, env_id=agent.config["env"]["id"], model=str(agent.path),
                  num_timesteps=int(agent.model.num_timesteps), backend=backend)
    if video is not None and frames:
        result["video"] = str(write_video(frames, video, fps))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result, indent=1))
        result["json"] = str(json_path)
    return result


def _render_fps(venv: VecEnv) -> float:
    try:
        fps = venv.get_attr("metadata")[0].get("render_fps")
    except (AttributeError, IndexError):
        fps = None
    return float(fps) if fps else 30.0
