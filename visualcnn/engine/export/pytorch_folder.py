"""The `pytorch` export: a folder a PyTorch user can load, predict with and train.

    model.py             an nn.Module written out layer by layer (torch_layers.py), input
                         (N, C, H, W); load_model() returns it with the weights, in eval mode
    weights.safetensors  the weights (the trained ones; a fresh model: VisualCNN's start)
    initial.safetensors  the weights VisualCNN starts training from with the recipe's seed
                         (Keras's initialisers), where train.py starts by default
    train.py             the training recipe (torch_train_script.py): CPU or GPU, torchrun
    README.md            how to load, predict, train

The module's forward returns probabilities, as VisualCNN's predict does: the final
softmax is the model's own. forward(x, logits=True) stops before it, so training can use
nn.CrossEntropyLoss on the scores (the stable form of Keras's cross-entropy on softmax).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import torch_layers
from .files import write_folder_atomic
from . import model_problems

__all__ = ["problems", "write", "module_source", "state_arrays", "ModuleSource"]

# Names a layer attribute or a forward variable must not take: nn.Module's own members
# and the names model.py itself uses.
_RESERVED = {"self", "x", "logits", "torch", "nn", "F", "math", "super", "training", "forward", "train", "eval",
             "to", "cpu", "cuda", "type", "float", "double", "half", "apply", "children", "modules", "parameters",
             "buffers", "state_dict", "load_state_dict", "zero_grad", "register_buffer", "register_parameter",
             "add_module", "named_modules", "named_parameters", "named_buffers", "named_children",
             "requires_grad_", "share_memory", "extra_repr", "dump_patches", "call_super_init", "get_submodule",
             "get_parameter", "get_buffer", "compile", "bfloat16", "ipu", "xpu", "mtia", "to_empty",
             "register_module", "set_extra_state", "get_extra_state", "register_forward_hook",
             "register_forward_pre_hook", "register_full_backward_hook", "register_backward_hook"}


def problems(model) -> list[str]:
    """One line per layer PyTorch export cannot write ("layer 'name' (Class): reason")."""
    found = model_problems(model)
    if found:
        return found
    report = model.analyse()
    found = []
    for row in report.rows:
        layer = row.layer
        ins = row.input_shapes if getattr(layer, "merge", False) else row.input_shape
        reason = torch_layers.problem(layer, ins, row.inference.output_shape)
        if reason:
            found.append(f"layer '{layer.name}' ({layer.class_name}): {reason}")
    return found


def _identifier(name: str, taken: set[str]) -> str:
    """A Python attribute name for a layer name (conv2d_1 stays conv2d_1)."""
    ident = re.sub(r"\W", "_", name) or "layer"
    if ident[0].isdigit():
        ident = "layer_" + ident
    if keyword.iskeyword(ident) or ident in _RESERVED:
        ident += "_layer"
    base, k = ident, 1
    while ident in taken:
        k += 1
        ident = f"{base}_{k}"
    taken.add(ident)
    return ident


def class_name(model_name: str) -> str:
    """seed_cnn -> SeedCnn: a class name from the model's name."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", model_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    return name if not name[0].isdigit() else "Model" + name


class _NoSoftmax:
    """A layer seen without its activation (the final softmax moves to forward's end)."""

    def __init__(self, layer):
        self.class_name, self.merge, self.name = layer.class_name, getattr(layer, "merge", False), layer.name
        self.config = dict(layer.config, activation="linear")


def _final_softmax(layer, row) -> str | None:
    """How the model's last layer gives probabilities: "activation" (its own softmax),
    "layer" (a Softmax / Activation('softmax') layer over the last axis), or None."""
    if layer.class_name == "Activation" and layer.config.get("activation") == "softmax":
        return "layer"
    if layer.class_name == "Softmax" and layer.gives_probabilities(row.inference.output_shape):
        return "layer"
    if layer.class_name != "Activation" and layer.config.get("activation") == "softmax":
        return "activation"
    return None


def _shape_text(keras_shape) -> str:
    shape = torch_layers.torch_shape(keras_shape)
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


@dataclass
class ModuleSource:
    """model.py's text and what goes with it."""

    source: str
    class_name: str
    attributes: dict  # layer name -> attribute name (layers with a module)
    has_final_softmax: bool


def module_source(model, *, docstring: str = "") -> ModuleSource:
    """model.py for `model` (problems(model) must be empty)."""
    report = model.checked_report()
    rows = report.rows
    layers = model.layers
    inbound = tuple(model.inbound)
    linear = all(ins == (i - 1,) for i, ins in enumerate(inbound))
    last = len(layers) - 1
    final = _final_softmax(layers[last], rows[last]) if layers else None
    taken: set[str] = set()
    names = [_identifier(layer.name, taken) for layer in layers]
    variables = ["x" if linear else n for n in names]
    helpers: set[str] = set()
    init, forward, attributes = [], [], {}
    for i, (layer, row) in enumerate(zip(layers, rows)):
        merge = getattr(layer, "merge", False)
        ins = row.input_shapes if merge else row.input_shape
        outs = row.inference.output_shape
        is_final = i == last and final is not None
        shown = _NoSoftmax(layer) if is_final and final == "activation" else layer
        describe = getattr(layer, "describe", lambda: "")() or ""
        title = f"{layer.class_name} '{layer.name}'" + (f": {describe}" if describe else "")
        sources = ["x" if j < 0 else variables[j] for j in inbound[i]]
        y = variables[i]
        if is_final and final == "layer":
            # the softmax itself is forward's last step (logits=True stops before it)
            if y == sources[0]:
                forward.append(f"        # {title}: applied at the end of forward")
            else:
                forward.append(f"        {y} = {sources[0]}  # {title}: applied at the end of forward")
            continue
        piece = torch_layers.translate(shown, ins, outs)
        helpers |= piece.helpers
        attr = f"self.{names[i]}"
        if piece.init:
            attributes[layer.name] = names[i]
            init.append(f"        # {title} -> {_shape_text(outs)}")
            init.append(f"        {attr} = {piece.init[0]}")
            init.extend(f"        {line.replace('{m}', attr)}" for line in piece.init[1:])
        for k, line in enumerate(piece.forward):
            text = line.replace("{m}", attr).replace("{y}", y)
            if merge:
                text = text.replace("{xs}", ", ".join(sources))
                for j, s in enumerate(sources):
                    text = text.replace(f"{{x{j}}}", s)
            else:
                text = text.replace("{x}", sources[0])
            where = f"{layer.name}: {_shape_text(outs)}" if k == len(piece.forward) - 1 else layer.name
            if k == 0 and piece.comment:
                forward.append(f"        # {piece.comment}")
            forward.append(f"        {text}  # {where}")
    out = variables[last] if layers else "x"
    out_rank = len(rows[last].inference.output_shape) if layers else 2
    cls = class_name(model.name)
    if final is not None:
        dim = torch_layers.torch_dim(-1, out_rank)
        forward += ["        if logits:",
                    f"            return {out}  # the scores before the final softmax (for nn.CrossEntropyLoss)",
                    f"        return torch.softmax({out}, dim={dim})"]
    else:
        forward += [f"        return {out}  # this model has no final softmax: logits=True changes nothing"]
    if not init:
        init = ["        pass  # no layer has weights or a module of its own"]
    input_shape = torch_layers.torch_shape((None, *model.input_shape))[1:]
    helper_text = "".join("\n\n" + torch_layers.HELPERS[name].strip("\n") + "\n" for name in sorted(helpers))
    text = f'''"""{docstring or model.name}"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# One image as the model takes it: {"(channels, height, width)" if len(input_shape) == 3 else "Keras's layout"}.
INPUT_SHAPE = {tuple(int(d) for d in input_shape)!r}
WEIGHTS = Path(__file__).with_name("weights.safetensors")
{helper_text}

class {cls}(nn.Module):
    """{model.name}, exported from VisualCNN: input {_shape_text((None, *model.input_shape))}, output {_shape_text(rows[last].inference.output_shape) if layers else "(N, ...)"}."""

    def __init__(self):
        super().__init__()
{chr(10).join(init)}

    def forward(self, x, logits=False):
{chr(10).join(forward)}


def load_model(path=None, device="cpu"):
    """The model with its weights (default: weights.safetensors beside this file), in eval mode."""
    from safetensors.torch import load_file

    model = {cls}()
    model.load_state_dict(load_file(str(path or WEIGHTS), device=str(device)))
    return model.to(device).eval()
'''
    return ModuleSource(text, cls, attributes, final is not None)


def state_arrays(model, layer_weights=None) -> dict[str, np.ndarray]:
    """The model's weights as the exported module's state_dict: {key: array}.

    layer_weights: per layer {Keras weight name: array} (default: the model's own, which
    must be built)."""
    report = model.checked_report()
    taken: set[str] = set()
    names = [_identifier(layer.name, taken) for layer in model.layers]
    last = len(model.layers) - 1
    final = _final_softmax(model.layers[last], report.rows[last]) if model.layers else None
    out: dict[str, np.ndarray] = {}
    for i, (layer, row) in enumerate(zip(model.layers, report.rows)):
        if i == last and final == "layer":
            continue
        merge = getattr(layer, "merge", False)
        ins = row.input_shapes if merge else row.input_shape
        shown = _NoSoftmax(layer) if i == last and final == "activation" else layer
        piece = torch_layers.translate(shown, ins, row.inference.output_shape)
        if piece.weights is None:
            continue
        weights = layer_weights[i] if layer_weights is not None else _keras_weights(layer)
        for key, value in piece.weights(weights).items():
            value = np.asarray(value)
            dtype = np.int64 if value.dtype.kind in "iu" else np.float32
            out[f"{names[i]}.{key}"] = np.ascontiguousarray(value, dtype=dtype)
    return out


def _keras_weights(layer) -> dict[str, np.ndarray]:
    return {spec.name: np.asarray(value) for spec, value in zip(layer.weight_specs, layer.weights)}


def fresh_weights(model, seed: int) -> list[dict]:
    """Per layer, the weights VisualCNN initialises `model` with for `seed` (a copy is
    built: the model itself is untouched)."""
    from ..model import model_from_graph

    layers = [type(layer).from_config(layer.get_config()) for layer in model.layers]
    for copy, layer in zip(layers, model.layers):
        copy.name = layer.name
    clone = model_from_graph(model.name, model.input_shape, layers, model.inbound, model.input_name)
    clone.build(seed=seed)
    return [_keras_weights(layer) for layer in clone.layers]


def write(model, path: Path, training, dataset=None) -> None:
    """dataset: the project's "dataset" section (None: MNIST), which train.py reads."""
    from safetensors.numpy import save

    from .script_data import script_data
    from .torch_train_script import readme_text, train_script

    data = script_data(model, dataset)  # refuses before anything is written
    initial = state_arrays(model, fresh_weights(model, training.seed))
    trained = state_arrays(model) if model.built else initial
    source = module_source(model, docstring=_docstring(model, trained is initial))
    files = {
        "model.py": source.source,
        "weights.safetensors": save(trained, metadata={"format": "pt", "source": "VisualCNN"}),
        "initial.safetensors": save(initial, metadata={"format": "pt", "source": "VisualCNN"}),
        "train.py": train_script(model, training, source, data),
        "README.md": readme_text(model, training, source, trained=model.built, data=data),
    }
    write_folder_atomic(path, files)


def _docstring(model, untrained: bool) -> str:
    from ... import __version__ as version

    shape = _shape_text((None, *model.input_shape))
    state = ("weights.safetensors holds freshly initialised weights (the model was not trained)" if untrained
             else "weights.safetensors holds the trained weights")
    return (f"{model.name}: a VisualCNN model as a PyTorch nn.Module{f' (VisualCNN {version})' if version else ''}.\n\n"
            f"Input: float32 images {shape} with pixel values / 255 (channels first).\n"
            "Output: class probabilities (the final softmax is part of the model);\n"
            "forward(x, logits=True) returns the scores before it, for nn.CrossEntropyLoss.\n"
            f"{state}; load_model() returns the model with them, in eval mode.\n\n"
            "Numerics follow Keras (and VisualCNN): 'same' padding puts its odd pixel at the end\n"
            "(bottom/right), Flatten reads (H, W, C) order, BatchNorm momentum = 1 - Keras's.\n"
            + (_BATCH_NORM_NOTE if any(layer.class_name == "BatchNormalization" for layer in model.layers) else ""))


# Said where it matters: predictions are identical, training differs by a factor this small.
_BATCH_NORM_NOTE = ("While training, PyTorch's BatchNorm averages the unbiased batch variance into\n"
                    "running_var where Keras uses the biased one: a factor n/(n-1) with n values per\n"
                    "channel in a batch (1.0001 for 64 images of 14x14).\n")
