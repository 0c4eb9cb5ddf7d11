"""Run an exported liquid-rl actor with numpy and onnxruntime only (no PyTorch).

::

    from liquid_rl.deploy import OnnxPolicy

    policy = OnnxPolicy("actor.onnx")
    policy.reset()
    action = policy.act(obs)            # the recurrent state is carried inside
"""

from liquid_rl.deploy.policy import OnnxPolicy

__all__ = ["OnnxPolicy"]
