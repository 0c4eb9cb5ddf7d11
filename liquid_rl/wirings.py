"""Wirings: which neuron talks to which, and with what sign.

A wiring holds two integer matrices with entries in {-1, 0, +1}:
``adjacency_matrix`` (N, N), synapses between neurons (row = source, column =
destination), and ``sensory_adjacency_matrix`` (I, N), synapses from the I input
features. The sign is the synapse's polarity (excitatory +1, inhibitory -1); for an
LTC it becomes the initial reversal potential ``erev``.

The classes, arguments, defaults and random draws follow ncps 1.0.1, so a wiring built
here with the same seed has the same synapses as ``ncps.wirings`` (tested).
Neuron order for NCP: motor neurons first, then command, then inter neurons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

_POLARITY = {1: "excitatory", -1: "inhibitory"}
_SYNAPSE_COLOURS = {"excitatory": "tab:green", "inhibitory": "tab:red"}
_NEURON_COLOURS = {"sensory": "tab:olive", "inter": "tab:blue", "command": "tab:purple", "motor": "tab:orange"}
#: ``draw_graph`` layout name -> networkx layout function (``{name}_layout``), as in ncps.
GRAPH_LAYOUTS = {"kamada": "kamada_kawai", "circular": "circular", "random": "random", "shell": "shell",
                 "spring": "spring", "spectral": "spectral", "spiral": "spiral"}


class Wiring:
    """Base wiring of ``units`` neurons, fully disconnected until synapses are added.

    Args:
        units: number of neurons N (the state size of the cell).
    """

    def __init__(self, units: int) -> None:
        if int(units) < 1:
            raise ValueError(f"units must be at least 1, got {units}")
        self.units = int(units)
        self.adjacency_matrix = np.zeros([self.units, self.units], dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None
        self.input_dim: int | None = None
        self.output_dim: int | None = None

    # --- structure -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        return list(range(self.units))

    @property
    def layer_sizes(self) -> list[int]:
        """Neurons per layer, input side first (for NCP: inter, command, motor)."""
        return [len(self.get_neurons_of_layer(i)) for i in range(self.num_layers)]

    def get_type_of_neuron(self, neuron_id: int) -> str:
        return "motor" if neuron_id < self.output_dim else "inter"

    @property
    def neuron_counts(self) -> dict[str, int]:
        """Number of neurons of each type, e.g. ``{"sensory": 8, "inter": 12, ...}``."""
        counts: dict[str, int] = {"sensory": self.input_dim or 0}
        for i in range(self.units):
            kind = self.get_type_of_neuron(i)
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def is_built(self) -> bool:
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Fix the number of input features I and draw the sensory synapses."""
        if self.input_dim is not None and self.input_dim != input_dim:
            raise ValueError(
                f"Conflicting input dimensions: the wiring was built for {self.input_dim} "
                f"input features but got {input_dim}; build a new wiring for this input."
            )
        if self.input_dim is None:
            self.set_input_dim(input_dim)

    def set_input_dim(self, input_dim: int) -> None:
        if int(input_dim) < 1:
            raise ValueError(f"input_dim must be at least 1, got {input_dim}")
        self.input_dim = int(input_dim)
        self.sensory_adjacency_matrix = np.zeros([self.input_dim, self.units], dtype=np.int32)

    def set_output_dim(self, output_dim: int) -> None:
        if not 1 <= int(output_dim) <= self.units:
            raise ValueError(
                f"output_dim must be between 1 and units={self.units}, got {output_dim}"
            )
        self.output_dim = int(output_dim)

    def erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self, shape: Any = None, dtype: Any = None) -> np.ndarray:
        return np.copy(self._require_built())

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        if not 0 <= src < self.units:
            raise ValueError(f"Cannot add synapse from neuron {src}: the wiring has {self.units} units")
        if not 0 <= dest < self.units:
            raise ValueError(f"Cannot add synapse to neuron {dest}: the wiring has {self.units} units")
        if polarity not in (-1, 1):
            raise ValueError(f"Synapse polarity must be -1 or +1, got {polarity}")
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        if self.input_dim is None:
            raise ValueError("Cannot add sensory synapses before build(input_dim) has been called")
        if not 0 <= src < self.input_dim:
            raise ValueError(f"Cannot add sensory synapse from input {src}: the input has {self.input_dim} features")
        if not 0 <= dest < self.units:
            raise ValueError(f"Cannot add synapse to neuron {dest}: the wiring has {self.units} units")
        if polarity not in (-1, 1):
            raise ValueError(f"Synapse polarity must be -1 or +1, got {polarity}")
        self.sensory_adjacency_matrix[src, dest] = polarity

    def _require_built(self) -> np.ndarray:
        if self.sensory_adjacency_matrix is None:
            raise ValueError("The wiring is not built yet: call wiring.build(input_dim) first")
        return self.sensory_adjacency_matrix

    # --- tensors ---------------------------------------------------------------------
    @property
    def adjacency(self) -> torch.Tensor:
        """(N, N) float tensor, 1 where a synapse exists (row = source)."""
        return torch.from_numpy(np.abs(self.adjacency_matrix).astype(np.float32))

    @property
    def polarity(self) -> torch.Tensor:
        """(N, N) float tensor of synapse signs in {-1, 0, +1}."""
        return torch.from_numpy(self.adjacency_matrix.astype(np.float32))

    @property
    def sensory_adjacency(self) -> torch.Tensor:
        """(I, N) float tensor, 1 where an input feeds a neuron."""
        return torch.from_numpy(np.abs(self._require_built()).astype(np.float32))

    @property
    def sensory_polarity(self) -> torch.Tensor:
        """(I, N) float tensor of sensory synapse signs in {-1, 0, +1}."""
        return torch.from_numpy(self._require_built().astype(np.float32))

    @property
    def synapse_count(self) -> int:
        return int(np.abs(self.adjacency_matrix).sum())

    @property
    def sensory_synapse_count(self) -> int:
        return int(np.abs(self._require_built()).sum())

    # --- config ----------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """A JSON-able description from which :meth:`from_config` rebuilds the wiring."""
        return {
            "class": "Wiring",
            "units": self.units,
            "adjacency_matrix": self.adjacency_matrix.tolist(),
            "sensory_adjacency_matrix": None
            if self.sensory_adjacency_matrix is None
            else self.sensory_adjacency_matrix.tolist(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Wiring":
        """Rebuild a wiring with exactly the stored synapses (any subclass)."""
        wiring = StoredWiring(config["units"], config.get("layers"), config.get("types"))
        wiring.adjacency_matrix = np.asarray(config["adjacency_matrix"], dtype=np.int32)
        if config.get("sensory_adjacency_matrix") is not None:
            wiring.sensory_adjacency_matrix = np.asarray(config["sensory_adjacency_matrix"], dtype=np.int32)
        wiring.input_dim = config["input_dim"]
        wiring.output_dim = config["output_dim"]
        return wiring

    def to_config(self) -> dict[str, Any]:
        """Like :meth:`get_config` but always stores the synapses and layer structure."""
        cfg = Wiring.get_config(self)
        cfg["layers"] = [self.get_neurons_of_layer(i) for i in range(self.num_layers)]
        cfg["types"] = [self.get_type_of_neuron(i) for i in range(self.units)]
        return cfg

    def summary(self) -> str:
        """One line, e.g. "NCP: 19 neurons (12 inter, 6 command, 1 motor), 59 synapses
        between neurons, 66 from 8 inputs"."""
        counts = self.neuron_counts
        kinds = ", ".join(f"{counts[k]} {k}" for k in ("inter", "command", "motor") if counts.get(k))
        line = f"{type(self).__name__}: {self.units} neurons ({kinds}), {self.synapse_count} synapses between neurons"
        if self.sensory_adjacency_matrix is not None:
            line += f", {self.sensory_synapse_count} from {self.input_dim} inputs"
        return line

    # --- graph (ncps' get_graph / draw_graph) -------------------------------------------
    def get_graph(self, include_sensory_neurons: bool = True) -> Any:
        """The wiring as a ``networkx.DiGraph``, with ncps' node and edge names.

        Nodes ``"neuron_{i}"`` (attribute ``neuron_type``: "inter", "command", "motor") and,
        with ``include_sensory_neurons``, ``"sensory_{i}"``; every synapse is an edge with
        ``polarity`` "excitatory" or "inhibitory". networkx comes with PyTorch.
        """
        import networkx as nx

        sensory = self._require_built()
        graph = nx.DiGraph()
        for i in range(self.units):
            graph.add_node(f"neuron_{i}", neuron_type=self.get_type_of_neuron(i))
        if include_sensory_neurons:
            for i in range(self.input_dim):
                graph.add_node(f"sensory_{i}", neuron_type="sensory")
            for (src, dest), sign in np.ndenumerate(sensory):
                if sign:
                    graph.add_edge(f"sensory_{src}", f"neuron_{dest}", polarity=_POLARITY[int(sign)])
        for (src, dest), sign in np.ndenumerate(self.adjacency_matrix):
            if sign:
                graph.add_edge(f"neuron_{src}", f"neuron_{dest}", polarity=_POLARITY[int(sign)])
        return graph

    def draw_graph(self, layout: str = "shell", neuron_colors: dict[str, str] | None = None,
                   synapse_colors: str | dict[str, str] | None = None, draw_labels: bool = False) -> list[Any]:
        """Draw :meth:`get_graph` on the current matplotlib axes, as ncps does.

        Args:
            layout: one of ``GRAPH_LAYOUTS`` (networkx layouts).
            neuron_colors: colour per neuron type, merged over the defaults.
            synapse_colors: one colour, or one per polarity.
            draw_labels: write each node's name ("neuron_7") beside it.

        Returns:
            The legend handles, one per neuron type (``plt.legend(handles=...)``).
        """
        import matplotlib.patches as mpatches
        import matplotlib.pyplot as plt
        import networkx as nx

        if layout not in GRAPH_LAYOUTS:
            raise ValueError(f"Unknown layout {layout!r}; use one of {', '.join(GRAPH_LAYOUTS)}")
        if isinstance(synapse_colors, str):
            synapse_colors = {"excitatory": synapse_colors, "inhibitory": synapse_colors}
        synapse_colors = {**_SYNAPSE_COLOURS, **(synapse_colors or {})}
        neuron_colors = {**_NEURON_COLOURS, **(neuron_colors or {})}
        graph = self.get_graph()
        positions = getattr(nx, f"{GRAPH_LAYOUTS[layout]}_layout")(graph)
        for node, data in graph.nodes(data=True):
            nx.draw_networkx_nodes(graph, positions, [node], node_color=neuron_colors[data["neuron_type"]])
        if draw_labels:
            nx.draw_networkx_labels(graph, positions)
        for src, dest, data in graph.edges(data=True):
            nx.draw_networkx_edges(graph, positions, [(src, dest)], edge_color=synapse_colors[data["polarity"]])
        kinds = {data["neuron_type"] for _, data in graph.nodes(data=True)}
        return [mpatches.Patch(color=colour, label=f"{kind.capitalize()} neurons")
                for kind, colour in neuron_colors.items() if kind in kinds]

    # --- drawing ---------------------------------------------------------------------
    def draw(self, path: str | Path, title: str | None = None) -> Path:
        """Render the wiring to a PNG: layers left to right (sensory, inter, command,
        motor), excitatory synapses green and inhibitory red; each neuron carries its
        index (the row names of the activity plots), each input ``s{i}``.

        Returns the path written.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D

        sensory = self._require_built()
        columns: list[list[tuple[str, int]]] = [[("sensory", i) for i in range(self.input_dim)]]
        for layer in range(self.num_layers):
            columns.append([("neuron", n) for n in self.get_neurons_of_layer(layer)])
        pos: dict[tuple[str, int], tuple[float, float]] = {}
        for x, column in enumerate(columns):
            count = len(column)
            for k, node in enumerate(column):
                pos[node] = (float(x), (k - (count - 1) / 2.0) / max(count, 1) * 10.0)

        colours = {1: "tab:green", -1: "tab:red"}
        fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 2, 6))
        for (src, dst), sign in np.ndenumerate(sensory):
            if sign:
                (x0, y0), (x1, y1) = pos[("sensory", src)], pos[("neuron", dst)]
                ax.plot([x0, x1], [y0, y1], color=colours[int(sign)], lw=0.6, alpha=0.6, zorder=1)
        for (src, dst), sign in np.ndenumerate(self.adjacency_matrix):
            if sign:
                (x0, y0), (x1, y1) = pos[("neuron", src)], pos[("neuron", dst)]
                if src == dst:
                    ax.add_patch(plt.Circle((x0 + 0.12, y0), 0.12, fill=False, color=colours[int(sign)], lw=0.6))
                else:
                    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1,
                                arrowprops=dict(arrowstyle="-|>", color=colours[int(sign)], lw=0.6, alpha=0.7,
                                                connectionstyle="arc3,rad=0.15" if x0 == x1 else "arc3"))
        kind_colour = {"sensory": "tab:olive", "inter": "tab:blue", "command": "tab:purple", "motor": "tab:orange"}
        for node, (x, y) in pos.items():
            kind = "sensory" if node[0] == "sensory" else self.get_type_of_neuron(node[1])
            ax.scatter([x], [y], s=170, color=kind_colour.get(kind, "tab:blue"), zorder=2, edgecolors="black")
            # the neuron's index, as in the activity plots' rows ("inter 7"); inputs "s0", "s1", ...
            ax.text(x, y, f"s{node[1]}" if node[0] == "sensory" else str(node[1]), fontsize=6,
                    ha="center", va="center", zorder=3)
        handles = [Line2D([0], [0], marker="o", ls="", color=c, label=k) for k, c in kind_colour.items()
                   if k in self.neuron_counts or k == "sensory"]
        handles += [Line2D([0], [0], color="tab:green", label="excitatory"),
                    Line2D([0], [0], color="tab:red", label="inhibitory")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_axis_off()
        ax.set_title(title or self.summary())
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


class WiredSizes:
    """Sizes of a module read off its wiring ``self._wiring``, with ncps' property names."""

    _wiring: Wiring

    @property
    def wiring(self) -> Wiring:
        return self._wiring

    @property
    def state_size(self) -> int:
        return self._wiring.units

    @property
    def sensory_size(self) -> int:
        return self._wiring.input_dim

    @property
    def motor_size(self) -> int:
        return self._wiring.output_dim

    @property
    def output_size(self) -> int:
        return self._wiring.output_dim

    @property
    def synapse_count(self) -> int:
        return self._wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int:
        return self._wiring.sensory_synapse_count


class StoredWiring(Wiring):
    """A wiring restored from :meth:`Wiring.to_config`: fixed synapses, layers and types."""

    def __init__(self, units: int, layers: list[list[int]] | None = None,
                 types: list[str] | None = None) -> None:
        super().__init__(units)
        self._layers = [list(map(int, layer)) for layer in layers] if layers else [list(range(units))]
        self._types = list(types) if types else None

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        return self._layers[layer_id]

    def get_type_of_neuron(self, neuron_id: int) -> str:
        return self._types[neuron_id] if self._types else super().get_type_of_neuron(neuron_id)


class FullyConnected(Wiring):
    """Every neuron connected to every neuron (and every input to every neuron).

    Args:
        units: number of neurons N.
        output_dim: number of motor (output) neurons; default all N.
        erev_init_seed: seed of the polarity draws (2/3 excitatory).
        self_connections: whether neuron i synapses onto itself.
    """

    def __init__(self, units: int, output_dim: int | None = None, erev_init_seed: int = 1111,
                 self_connections: bool = True) -> None:
        super().__init__(units)
        self.set_output_dim(units if output_dim is None else output_dim)
        self.self_connections = self_connections
        self._erev_init_seed = erev_init_seed
        self._rng = np.random.default_rng(erev_init_seed)
        for src in range(self.units):
            for dest in range(self.units):
                if src == dest and not self_connections:
                    continue
                self.add_synapse(src, dest, self._rng.choice([-1, 1, 1]))

    def build(self, input_dim: int) -> None:
        fresh = self.input_dim is None
        super().build(input_dim)
        if fresh:
            for src in range(self.input_dim):
                for dest in range(self.units):
                    self.add_sensory_synapse(src, dest, self._rng.choice([-1, 1, 1]))


class Random(Wiring):
    """Randomly chosen synapses with a given sparsity level in [0, 1).

    Args:
        units: number of neurons N.
        output_dim: number of motor neurons; default N.
        sparsity_level: fraction of the N*N (and I*N) possible synapses left out.
        random_seed: seed of the draws.
    """

    def __init__(self, units: int, output_dim: int | None = None, sparsity_level: float = 0.0,
                 random_seed: int = 1111) -> None:
        super().__init__(units)
        self.set_output_dim(units if output_dim is None else output_dim)
        if not 0.0 <= sparsity_level < 1.0:
            raise ValueError(f"sparsity_level must be in [0, 1), got {sparsity_level}")
        self.sparsity_level = sparsity_level
        self._random_seed = random_seed
        self._rng = np.random.default_rng(random_seed)
        count = int(np.round(units * units * (1 - sparsity_level)))
        pairs = [(s, d) for s in range(self.units) for d in range(self.units)]
        for src, dest in self._rng.choice(pairs, size=count, replace=False):
            self.add_synapse(int(src), int(dest), self._rng.choice([-1, 1, 1]))

    def build(self, input_dim: int) -> None:
        fresh = self.input_dim is None
        super().build(input_dim)
        if not fresh:
            return
        count = int(np.round(self.input_dim * self.units * (1 - self.sparsity_level)))
        pairs = [(s, d) for s in range(self.input_dim) for d in range(self.units)]
        for src, dest in self._rng.choice(pairs, size=count, replace=False):
            # Two draws per synapse, the second one kept: ncps does this, and matching its
            # random stream keeps wirings identical for the same seed.
            self.add_sensory_synapse(int(src), int(dest), self._rng.choice([-1, 1, 1]))
            self.add_sensory_synapse(int(src), int(dest), self._rng.choice([-1, 1, 1]))


class NCP(Wiring):
    """Neural Circuit Policy wiring: sensory -> inter -> command (recurrent) -> motor.

    Args:
        inter_neurons: number of inter neurons (layer 1).
        command_neurons: number of command neurons (layer 2, recurrent).
        motor_neurons: number of motor neurons (layer 3, the outputs).
        sensory_fanout: synapses from each input to inter neurons (<= inter_neurons).
        inter_fanout: synapses from each inter neuron to command neurons (<= command_neurons).
        recurrent_command_synapses: number of command -> command synapses drawn.
        motor_fanin: synapses into each motor neuron from command neurons (<= command_neurons).
        seed: seed of the draws.
    """

    def __init__(self, inter_neurons: int, command_neurons: int, motor_neurons: int,
                 sensory_fanout: int, inter_fanout: int, recurrent_command_synapses: int,
                 motor_fanin: int, seed: int = 22222) -> None:
        for name, value in (("inter_neurons", inter_neurons), ("command_neurons", command_neurons),
                            ("motor_neurons", motor_neurons)):
            if int(value) < 1:
                raise ValueError(f"NCP needs at least 1 neuron per layer, got {name}={value}")
        for name, value in (("sensory_fanout", sensory_fanout), ("inter_fanout", inter_fanout),
                            ("motor_fanin", motor_fanin)):
            if int(value) < 1:
                raise ValueError(f"NCP {name} must be at least 1, got {value}")
        if recurrent_command_synapses < 0:
            raise ValueError(f"recurrent_command_synapses must be >= 0, got {recurrent_command_synapses}")
        super().__init__(inter_neurons + command_neurons + motor_neurons)
        self.set_output_dim(motor_neurons)
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._num_inter_neurons = inter_neurons
        self._num_command_neurons = command_neurons
        self._num_motor_neurons = motor_neurons
        self._sensory_fanout = sensory_fanout
        self._inter_fanout = inter_fanout
        self._recurrent_command_synapses = recurrent_command_synapses
        self._motor_fanin = motor_fanin
        self._motor_neurons = list(range(0, motor_neurons))
        self._command_neurons = list(range(motor_neurons, motor_neurons + command_neurons))
        self._inter_neurons = list(range(motor_neurons + command_neurons, self.units))
        if motor_fanin > command_neurons:
            raise ValueError(f"motor_fanin is {motor_fanin} but there are only {command_neurons} command neurons")
        if sensory_fanout > inter_neurons:
            raise ValueError(f"sensory_fanout is {sensory_fanout} but there are only {inter_neurons} inter neurons")
        if inter_fanout > command_neurons:
            raise ValueError(f"inter_fanout is {inter_fanout} but there are only {command_neurons} command neurons")

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        if layer_id == 0:
            return self._inter_neurons
        if layer_id == 1:
            return self._command_neurons
        if layer_id == 2:
            return self._motor_neurons
        raise ValueError(f"Unknown layer {layer_id}: an NCP has layers 0 (inter), 1 (command), 2 (motor)")

    def get_type_of_neuron(self, neuron_id: int) -> str:
        if neuron_id < self._num_motor_neurons:
            return "motor"
        if neuron_id < self._num_motor_neurons + self._num_command_neurons:
            return "command"
        return "inter"

    def _connect(self, sources: list[int], targets: list[int], fanout: int, sensory: bool) -> None:
        """Each source gets ``fanout`` random targets; unreached targets get a mean fan-in."""
        add = self.add_sensory_synapse if sensory else self.add_synapse
        unreached = list(targets)
        for src in sources:
            for dest in self._rng.choice(targets, size=fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                add(src, int(dest), self._rng.choice([-1, 1]))
        fanin = int(np.clip(int(len(sources) * fanout / len(targets)), 1, len(sources)))
        for dest in unreached:
            for src in self._rng.choice(sources, size=fanin, replace=False):
                add(int(src), dest, self._rng.choice([-1, 1]))

    def build(self, input_dim: int) -> None:
        fresh = self.input_dim is None
        super().build(input_dim)
        if not fresh:
            return
        sensory = list(range(self.input_dim))
        self._connect(sensory, self._inter_neurons, self._sensory_fanout, sensory=True)
        self._connect(self._inter_neurons, self._command_neurons, self._inter_fanout, sensory=False)
        for _ in range(self._recurrent_command_synapses):
            src = self._rng.choice(self._command_neurons)
            dest = self._rng.choice(self._command_neurons)
            self.add_synapse(int(src), int(dest), self._rng.choice([-1, 1]))
        # Command -> motor: here every motor neuron draws its fan-in (targets choose sources).
        unreached = list(self._command_neurons)
        for dest in self._motor_neurons:
            for src in self._rng.choice(self._command_neurons, size=self._motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                self.add_synapse(int(src), dest, self._rng.choice([-1, 1]))
        fanout = int(np.clip(int(self._num_motor_neurons * self._motor_fanin / self._num_command_neurons),
                             1, self._num_motor_neurons))
        for src in unreached:
            for dest in self._rng.choice(self._motor_neurons, size=fanout, replace=False):
                self.add_synapse(src, int(dest), self._rng.choice([-1, 1]))


class AutoNCP(NCP):
    """NCP with layer sizes and fan-outs derived from ``units`` and ``output_size``.

    command = max(int(0.4 * (units - output_size)), 1), inter = the rest; fan-outs scale
    with the density ``1 - sparsity_level``.

    Args:
        units: total neurons N (> output_size + 2).
        output_size: number of motor neurons.
        sparsity_level: in [0.1, 1.0]; higher is sparser.
        seed: seed of the draws.
    """

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        if output_size >= units - 2:
            raise ValueError(
                f"AutoNCP output_size must be less than units - 2 (got units={units}, output_size={output_size})"
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise ValueError(f"AutoNCP sparsity_level must be between 0.1 and 1.0, got {sparsity_level}")
        self._output_size = output_size
        self._sparsity_level = sparsity_level
        density = 1.0 - sparsity_level
        inter_and_command = units - output_size
        command = max(int(0.4 * inter_and_command), 1)
        inter = inter_and_command - command
        super().__init__(
            inter, command, output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )


class NcpsWiring(StoredWiring):
    """An ``ncps.wirings`` object used here: its synapses are copied once it is built.

    ``build(input_dim)`` builds the ncps wiring itself (as ncps' own models do, so the
    user's object ends up built, with ncps' random draws) and copies its matrices, layers
    and neuron types. Made by :func:`as_wiring`; ncps is never imported.
    """

    def __init__(self, ncps_wiring: Any) -> None:
        layers = [list(map(int, ncps_wiring.get_neurons_of_layer(i))) for i in range(ncps_wiring.num_layers)]
        types = [str(ncps_wiring.get_type_of_neuron(i)) for i in range(ncps_wiring.units)]
        super().__init__(int(ncps_wiring.units), layers, types)
        self.source = ncps_wiring
        self.adjacency_matrix = np.asarray(ncps_wiring.adjacency_matrix, dtype=np.int32).copy()
        if ncps_wiring.output_dim is not None:
            self.output_dim = int(ncps_wiring.output_dim)
        if ncps_wiring.input_dim is not None:
            self._copy_sensory()

    def _copy_sensory(self) -> None:
        # ncps draws its recurrent synapses (NCP) during build too: copy both matrices.
        self.adjacency_matrix = np.asarray(self.source.adjacency_matrix, dtype=np.int32).copy()
        self.sensory_adjacency_matrix = np.asarray(self.source.sensory_adjacency_matrix, dtype=np.int32).copy()
        self.input_dim = int(self.source.input_dim)

    def summary(self) -> str:
        return f"ncps {type(self.source).__name__}" + super().summary()[len(type(self).__name__):]

    def build(self, input_dim: int) -> None:
        if self.input_dim is None:
            self.source.build(int(input_dim))
            self._copy_sensory()
        super().build(input_dim)


def is_ncps_wiring(obj: Any) -> bool:
    """Whether ``obj`` is a wiring of the ncps package (told by its class's module)."""
    return any(c.__module__.split(".")[0] == "ncps" and c.__name__ == "Wiring" for c in type(obj).__mro__)


def as_wiring(units: Any) -> Any:
    """Pass an int or a :class:`Wiring` through; convert an ncps wiring to :class:`NcpsWiring`.

    Raises:
        TypeError: anything else, naming what is accepted.
    """
    if isinstance(units, Wiring):
        return units
    if is_ncps_wiring(units):
        return NcpsWiring(units)
    if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
        return int(units)
    raise TypeError(f"units must be a number of neurons (int) or a liquid_rl.wirings.Wiring (an ncps wiring is "
                    f"converted), got {type(units).__module__}.{type(units).__name__}")
