"""Writing a :class:`~liquid_rl.export.actor.DeployActor` to ONNX or TorchScript, with metadata.

Both formats are PyTorch's own exporters: ``torch.onnx.export`` (opset ``OPSET``, dynamic
batch) and ``torch.jit.trace``. The metadata (JSON under the key ``METADATA_KEY``: the
ONNX file's ``metadata_props``, the TorchScript archive's extra file ``liquid_rl.json``)
gives the spaces, the state size, the dt unit and default, the input and output names,
the liquid-rl version and the SHA-256 of the run's config.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from liquid_rl.export.actor import DeployActor, ExportError, build_actor, example_inputs

__all__ = ["export_agent", "metadata_of", "OPSET", "METADATA_KEY", "FORMATS"]

OPSET = 17
METADATA_KEY = "liquid_rl"
FORMATS = ("onnx", "torchscript")


def metadata_of(agent: Any, actor: DeployActor) -> dict[str, Any]:
    """The JSON metadata written into an exported file."""
    import liquid_rl
    from liquid_rl.agents.build import config_json
    from liquid_rl.agents.safe_load import space_to_json

    spec = actor.spec
    return {
        "format": "liquid-rl-actor", "format_version": 1,
        "liquid_rl_version": liquid_rl.__version__,
        "config_sha256": hashlib.sha256(config_json(agent.config).encode()).hexdigest(),
        "algo": agent.config["algo"]["name"], "policy_type": agent.config["policy"]["type"],
        "env_id": agent.config["env"]["id"],
        "observation_space": space_to_json(agent.model.observation_space),
        "action_space": space_to_json(agent.model.action_space),
        "obs_shape": list(spec.obs_shape), "state_size": spec.state_size, "frame_stack": spec.frame_stack,
        "dt": ({"unit": spec.dt_unit, "default": spec.dt_default,
                "meaning": "elapsed time since the previous step, in the env's time units; the cell integrates "
                           "dt / unit; dt <= 0 counts as the default"} if spec.uses_dt else None),
        "inputs": spec.input_names, "outputs": spec.output_names,
        "action_dtype": "int64" if spec.discrete else "float32",
        "normalization_folded": actor.normalizer is not None, **spec.details,
    }


def _trace_check(actor: DeployActor, spec_inputs: tuple[torch.Tensor, ...]) -> None:
    with torch.no_grad():
        actor(*spec_inputs)


def export_agent(agent: Any, out: str | Path, fmt: str = "onnx") -> dict[str, Any]:
    """Export the deterministic actor of ``agent`` to ``out`` in ``fmt`` ("onnx" or
    "torchscript"); returns the metadata written.

    Raises:
        ExportError: the agent cannot be exported, or the exporter failed (one line).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    actor = build_actor(agent)
    meta = metadata_of(agent, actor)
    inputs = example_inputs(actor.spec)
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a directory; give a file name")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic
            _trace_check(actor, inputs)
            if fmt == "torchscript":
                traced = torch.jit.trace(actor, inputs, check_trace=False)
                buffer = io.BytesIO()
                torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
                data = buffer.getvalue()
            else:
                data = _onnx_bytes(actor, inputs, meta)
    except ExportError:
        raise
    except Exception as e:  # the exporters raise many types; report one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"the {fmt} exporter failed on this policy: {first}") from None
    from liquid_rl.agents.safe_load import atomic_write_bytes

    atomic_write_bytes(out, data)
    return meta


def _onnx_bytes(actor: DeployActor, inputs: tuple[torch.Tensor, ...], meta: dict[str, Any]) -> bytes:
    import onnx

    spec = actor.spec
    axes = {name: {0: "batch"} for name in spec.input_names + spec.output_names}
    buffer = io.BytesIO()
    torch.onnx.export(actor, inputs, buffer, input_names=spec.input_names, output_names=spec.output_names,
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    model.producer_name = "liquid-rl"
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()
