"""The training engine: numpy + numba only. Never imports Qt.

Keras-like API: `from visualcnn.engine import Sequential, layers`.
"""

from . import layers
from .analysis import PipelineReport, analyse
from .layers import ConfigError
from .memory import MemoryLimitError, check_memory, estimate_memory
from .model import Sequential
from .model_io import load_model, load_model_file, model_from_json, read_model_file, save_model_file
from .summary import render_summary, summarize
from .training_config import TrainingConfig



def __getattr__(name):
    # Training modules import numba; load them on first use so `visualcnn summary` stays instant.
    lazy = {"losses", "optimizers", "activations", "initializers", "training"}
    if name in lazy:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in {"History", "StepReport", "EpochReport", "TrainingDiverged", "train"}:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "layers", "PipelineReport", "analyse", "ConfigError", "Sequential", "load_model_file", "model_from_json",
    "read_model_file", "save_model_file", "render_summary", "summarize", "TrainingConfig",
    "load_model", "losses", "optimizers", "activations", "initializers", "training", "History", "StepReport",
    "EpochReport", "TrainingDiverged", "train", "MemoryLimitError", "check_memory", "estimate_memory",
]
