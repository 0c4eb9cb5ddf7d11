"""Training, evaluation and loading of agents (installed as ``liquid_rl.agents``).

::

    from liquid_rl.agents import train, resume, evaluate, load_agent, inspect_agent

    run = train("configs/lane_keeping_ncp.yaml", out="runs/demo", overrides=["train.total_timesteps=30000"])
    print(evaluate(run, episodes=5)["mean_return"])
    agent = load_agent(run)                 # runs no code from the file
    env = agent.make_env()                  # the config's env, frozen normalisation statistics
    obs = env.reset()
    action, state = agent.model.predict(obs, deterministic=True)  # pass state/episode_start for recurrent policies

The same operations as commands: ``liquid-rl train|eval|inspect`` (``liquid_rl.cli``).
"""

from liquid_rl.agents.config import ConfigError, UserError, load_config, validate_config
from liquid_rl.agents.evaluate import evaluate
from liquid_rl.agents.inspect import inspect_agent
from liquid_rl.agents.recurrent_sac import RecurrentSAC
from liquid_rl.agents.safe_load import Agent, load_agent, save_agent
from liquid_rl.agents.train import check_config, resume, train

__all__ = [
    "train",
    "resume",
    "evaluate",
    "inspect_agent",
    "load_agent",
    "save_agent",
    "Agent",
    "load_config",
    "validate_config",
    "check_config",
    "ConfigError",
    "UserError",
    "RecurrentSAC",
]
