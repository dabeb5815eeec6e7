"""Memory of the pipeline being edited, as the builder shows it (cards, summary, status).

A thin view over engine.memory: the document prices itself (PipelineDocument.memory_estimate,
at its training settings' batch size and optimizer); this module turns that into the texts
the cards and the summary show, with the engine's own verdict (memory_problem).
"""

from __future__ import annotations

from ..engine.memory import MemoryEstimate, format_bytes, memory_problem


def document_memory(document) -> MemoryEstimate | None:
    """The estimate for the document's current report, None when it cannot be priced."""
    try:
        return document.memory_estimate()
    except (ValueError, TypeError):
        return None


def peak_text(estimate: MemoryEstimate) -> tuple[str, str | None]:
    """('Training peak at batch 64: about 45.2 MiB', problem or None)."""
    problem = memory_problem(estimate, training=True)
    text = (f"Training peak at batch {estimate.batch_size}: about {format_bytes(estimate.training_peak_bytes)} "
            f"(weights {format_bytes(estimate.weight_bytes)})")
    return text, problem


__all__ = ["document_memory", "peak_text", "format_bytes"]
