"""The training engine: numpy + numba only. Never imports Qt.

Keras-like API: `from visualcnn.engine import Sequential, Model, Input, layers`.
"""

from . import layers
from .analysis import PipelineReport, analyse, analyse_graph
from .layers import ConfigError
from .memory import MemoryLimitError, check_memory, estimate_memory
from .graph import KerasTensor
from .layers import Input
from .model import Model, Sequential, model_from_graph
from .model_io import load_model, load_model_file, model_from_json, read_model_file, save_model_file
from .summary import render_summary, summarize
from .training_config import TrainingConfig



def __getattr__(name):
    # Training modules import numba; load them on first use so `visualcnn summary` stays instant.
    lazy = {"losses", "optimizers", "schedules", "activations", "initializers", "training"}
    if name in lazy:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in {"History", "StepReport", "EpochReport", "TrainingDiverged", "train"}:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "layers", "PipelineReport", "analyse", "analyse_graph", "ConfigError", "Sequential", "Model", "Input",
    "KerasTensor", "model_from_graph", "load_model_file", "model_from_json",
    "read_model_file", "save_model_file", "render_summary", "summarize", "TrainingConfig",
    "load_model", "losses", "optimizers", "schedules", "activations", "initializers", "training", "History",
    "StepReport",
    "EpochReport", "TrainingDiverged", "train", "MemoryLimitError", "check_memory", "estimate_memory",
]
