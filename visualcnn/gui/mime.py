"""Drag and drop payloads: a private MIME type carrying JSON, encoded and decoded by pure functions.

Two kinds of payload travel under application/x-visualcnn-layer:

- a new block from the palette: {"source": "palette", "class_name": "Conv2D", "config": {...}}
- a block dragged within (or out of) a pipeline:
  {"source": "pipeline", "document": "<id>", "index": 3, "class_name": ..., "config": ...}

The pipeline view moves a block when the payload comes from its own document and inserts
a copy otherwise, so a block can be dragged from one window to another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MIME_TYPE = "application/x-visualcnn-layer"
MAX_PAYLOAD_BYTES = 1_000_000


@dataclass(frozen=True)
class LayerPayload:
    source: str                # "palette" or "pipeline"
    class_name: str
    config: dict
    index: int | None = None   # the dragged block's row, for "pipeline"
    document: str | None = None

    def is_move_within(self, document_id: str) -> bool:
        return self.source == "pipeline" and self.document == document_id and self.index is not None


def encode_payload(payload: LayerPayload) -> bytes:
    data = {"source": payload.source, "class_name": payload.class_name, "config": payload.config}
    if payload.index is not None:
        data["index"] = payload.index
    if payload.document is not None:
        data["document"] = payload.document
    return json.dumps(data, sort_keys=True).encode("utf-8")


def decode_payload(raw: bytes) -> LayerPayload:
    """The payload in raw bytes; ValueError for anything that is not one we wrote."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ValueError("layer payload too large")
    try:
        data = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"layer payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("layer payload must be a JSON object")
    source, class_name, config = data.get("source"), data.get("class_name"), data.get("config", {})
    if source not in ("palette", "pipeline"):
        raise ValueError(f"layer payload source must be 'palette' or 'pipeline', received {source!r}")
    if not isinstance(class_name, str) or not class_name:
        raise ValueError("layer payload needs a class_name")
    if not isinstance(config, dict):
        raise ValueError("layer payload config must be an object")
    index = data.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise ValueError(f"layer payload index must be a non-negative integer, received {index!r}")
    document = data.get("document")
    if document is not None and not isinstance(document, str):
        raise ValueError("layer payload document must be a string")
    return LayerPayload(source, class_name, config, index, document)


def drop_row(row_rects: list[tuple[int, int]], y: int) -> int:
    """Insertion row for a drop at height y, given each row's (top, height) in order.

    Dropping on the upper half of a block inserts before it, on the lower half after it;
    below the last block appends.
    """
    for row, (top, height) in enumerate(row_rects):
        if y < top + height / 2:
            return row
    return len(row_rects)
