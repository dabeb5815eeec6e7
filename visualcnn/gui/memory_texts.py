"""Memory of the pipeline being edited, as the builder shows it (cards, summary, status).

A thin view over engine.memory at the document's batch size and optimizer (its training
settings, else the defaults): every block's weight and activation bytes, and the
training peak with the engine's own verdict (memory_problem) on whether it fits.
"""

from __future__ import annotations

from ..engine.memory import MemoryEstimate, estimate_memory, format_bytes, memory_problem
from ..engine.training_config import TrainingConfig


def training_config(document) -> TrainingConfig:
    return getattr(document, "training", None) or TrainingConfig()


def document_memory(document) -> MemoryEstimate | None:
    """The estimate for the document's current report, None when it cannot be priced."""
    config = training_config(document)
    try:
        return estimate_memory(document.report, int(config.batch_size), optimizer=config.optimizer,
                               momentum=config.momentum)
    except (ValueError, TypeError, AttributeError):
        return None


def peak_text(estimate: MemoryEstimate) -> tuple[str, str | None]:
    """('Training peak at batch 64: about 45.2 MiB', problem or None)."""
    problem = memory_problem(estimate, training=True)
    text = (f"Training peak at batch {estimate.batch_size}: about {format_bytes(estimate.training_peak_bytes)} "
            f"(weights {format_bytes(estimate.weight_bytes)})")
    return text, problem


def connect_training_changes(document, slot) -> None:
    """Call slot() when the document's training settings change (batch size moves the bytes)."""
    signal = getattr(document, "training_changed", None)
    if signal is not None:
        signal.connect(lambda *_: slot())


__all__ = ["document_memory", "peak_text", "format_bytes", "training_config", "connect_training_changes"]
