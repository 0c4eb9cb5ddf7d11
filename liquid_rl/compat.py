"""Interop with ncps (the reference implementation).

``from_ncps(module)`` turns an ``ncps.torch.LTC`` or ``ncps.torch.CfC`` into the
equivalent ``liquid_rl`` module with the same wiring and weights; outputs match to
float32 rounding. ncps itself is imported only to read its objects.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from liquid_rl.cfc import ACTIVATIONS, CfC
from liquid_rl.ltc import LTC
from liquid_rl.wirings import StoredWiring, Wiring


def wiring_from_ncps(wiring: Any) -> Wiring:
    """Copy an ncps wiring (synapses, polarities, layers, neuron types)."""
    if wiring.input_dim is None:
        raise ValueError("The ncps wiring is not built: call wiring.build(input_dim) first")
    layers = [list(map(int, wiring.get_neurons_of_layer(i))) for i in range(wiring.num_layers)]
    types = [wiring.get_type_of_neuron(i) for i in range(wiring.units)]
    ours = StoredWiring(wiring.units, layers, types)
    ours.adjacency_matrix = wiring.adjacency_matrix.astype("int32").copy()
    ours.sensory_adjacency_matrix = wiring.sensory_adjacency_matrix.astype("int32").copy()
    ours.input_dim = int(wiring.input_dim)
    ours.output_dim = int(wiring.output_dim)
    return ours


def _activation_name(backbone: nn.Module | None) -> str:
    if backbone is None:
        return "lecun_tanh"
    for module in backbone:
        for name, cls in ACTIVATIONS.items():
            if type(module).__name__ == cls.__name__:
                return name
    raise ValueError("Cannot tell the backbone activation of this ncps CfC")


def from_ncps(module: nn.Module) -> LTC | CfC:
    """Convert an ncps.torch ``LTC`` or ``CfC`` (any wiring, mode, mixed_memory,
    proj_size) into a liquid_rl module with identical weights, in train/eval mode as given.

    Raises:
        ValueError: for any other module type.
    """
    kind = type(module).__name__
    if kind == "LTC" and type(module).__module__.startswith("ncps"):
        cell = module.rnn_cell
        ours: LTC | CfC = LTC(
            module.input_size, wiring_from_ncps(module._wiring), return_sequences=module.return_sequences,
            batch_first=module.batch_first, mixed_memory=module.use_mixed,
            input_mapping=cell._input_mapping, output_mapping=cell._output_mapping,
            ode_unfolds=cell._ode_unfolds, epsilon=cell._epsilon,
            implicit_param_constraints=cell._implicit_param_constraints)
    elif kind == "CfC" and type(module).__module__.startswith("ncps"):
        if getattr(module, "wired_mode", False):
            mode = module.rnn_cell._layers[0].mode
            ours = CfC(module.input_size, wiring_from_ncps(module.wiring), proj_size=module.proj_size,
                       return_sequences=module.return_sequences, batch_first=module.batch_first,
                       mixed_memory=module.use_mixed, mode=mode)
        else:
            cell = module.rnn_cell
            backbone = cell.backbone
            dropout = [m.p for m in (backbone or []) if isinstance(m, nn.Dropout)]
            ours = CfC(module.input_size, cell.hidden_size, proj_size=module.proj_size,
                       return_sequences=module.return_sequences, batch_first=module.batch_first,
                       mixed_memory=module.use_mixed, mode=cell.mode, activation=_activation_name(backbone),
                       backbone_units=backbone[0].out_features if backbone is not None else 128,
                       backbone_layers=cell.backbone_layers, backbone_dropout=dropout[0] if dropout else 0.0)
    else:
        raise ValueError(f"from_ncps takes an ncps.torch LTC or CfC; got {type(module).__module__}.{kind}")
    ours.load_state_dict(module.state_dict())
    ref = next(module.parameters())
    return ours.to(device=ref.device, dtype=ref.dtype).train(module.training)
