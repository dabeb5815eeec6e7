"""The training engine: numpy + numba only. Never imports Qt.

Keras-like API: `from visualcnn.engine import Sequential, layers`.
"""

from . import layers
from .analysis import PipelineReport, analyse
from .layers import ConfigError
from .model import Sequential
from .model_io import load_model_file, model_from_json, read_model_file, save_model_file
from .summary import render_summary, summarize
from .training_config import TrainingConfig

__all__ = [
    "layers", "PipelineReport", "analyse", "ConfigError", "Sequential", "load_model_file", "model_from_json",
    "read_model_file", "save_model_file", "render_summary", "summarize", "TrainingConfig",
]
