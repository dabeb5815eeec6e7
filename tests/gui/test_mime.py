"""The private MIME payload: pure encode/decode, and the drop-row rule."""

from __future__ import annotations

import pytest

from visualcnn.gui.mime import LayerPayload, decode_payload, drop_row, encode_payload


@pytest.mark.parametrize("payload", [
    LayerPayload("palette", "Conv2D", {"filters": 32, "kernel_size": [3, 3]}),
    LayerPayload("pipeline", "Dense", {"units": 10}, index=3, document="7f00"),
])
def test_round_trip(payload):
    assert decode_payload(encode_payload(payload)) == payload


@pytest.mark.parametrize("raw, message", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"source": "elsewhere", "class_name": "Dense"}', "source"),
    (b'{"source": "palette"}', "class_name"),
    (b'{"source": "palette", "class_name": "Dense", "config": []}', "config"),
    (b'{"source": "pipeline", "class_name": "Dense", "index": -1}', "index"),
    (b'{"source": "pipeline", "class_name": "Dense", "index": true}', "index"),
    (b"\xff\xfe", "not JSON"),
])
def test_rejects_what_we_did_not_write(raw, message):
    with pytest.raises(ValueError, match=message):
        decode_payload(raw)


@pytest.mark.parametrize("y, row", [(0, 0), (19, 0), (21, 1), (45, 1), (55, 2), (500, 2)])
def test_drop_row_uses_the_half_height_of_each_block(y, row):
    assert drop_row([(0, 40), (40, 20)], y) == row


def test_drop_row_on_an_empty_pipeline_appends():
    assert drop_row([], 100) == 0
