"""Export a trained agent's deterministic actor to ONNX or TorchScript (PyTorch's own
exporters); run the ONNX file without PyTorch with :mod:`liquid_rl.deploy`."""

from liquid_rl.export.actor import ActorSpec, DeployActor, ExportError, build_actor
from liquid_rl.export.files import FORMATS, METADATA_KEY, OPSET, export_agent, metadata_of

__all__ = ["ActorSpec", "DeployActor", "ExportError", "build_actor", "export_agent", "metadata_of",
           "FORMATS", "METADATA_KEY", "OPSET"]
