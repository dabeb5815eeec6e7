"""Mosaics of feature maps and filters (pure numpy)."""

import numpy as np
import pytest

from visualcnn.gui.panels.tiling import grid_columns, normalise_per_tile, symmetric_level, tile, tile_position


def test_tile_places_channel_c_at_row_c_div_columns():
    maps = np.stack([np.full((2, 3), c, np.float32) for c in range(5)], axis=-1)  # (2, 3, 5)
    mosaic = tile(maps, columns=2)
    assert mosaic.shape == (3 * 2 + 2, 2 * 3 + 1)
    assert mosaic[0, 0] == 0 and mosaic[0, 4] == 1 and mosaic[3, 0] == 2 and mosaic[6, 0] == 4
    assert np.isnan(mosaic[2, 0]) and np.isnan(mosaic[0, 3]) and np.isnan(mosaic[6, 4])


@pytest.mark.parametrize("row,col,expected", [(0, 0, (0, 0, 0)), (1, 2, (0, 1, 2)), (0, 4, (1, 0, 0)),
                                              (2, 0, None), (0, 3, None), (6, 4, None), (3, 5, (3, 0, 1))])
def test_tile_position_inverts_tile(row, col, expected):
    assert tile_position(row, col, (2, 3, 5), columns=2) == expected


def test_normalise_per_tile_and_levels():
    maps = np.stack([np.array([[0.0, 2.0]]), np.array([[5.0, 5.0]])], axis=-1)
    norm = normalise_per_tile(maps)
    assert norm[0, :, 0].tolist() == [0.0, 1.0] and norm[0, :, 1].tolist() == [0.0, 0.0]
    assert symmetric_level(np.array([np.nan, -3.0, 2.0])) == 3.0
    assert grid_columns(32) == 6 and grid_columns(1) == 1


def test_tile_rejects_wrong_rank():
    with pytest.raises(ValueError, match="height, width, channels"):
        tile(np.zeros((3, 3)))


@pytest.mark.parametrize("value,expected", [(0.308, 0.5), (0.25, 0.25), (0.21, 0.25), (1.0, 1.0), (1.01, 2.0),
                                            (0.0031, 0.005), (7.0, 10.0), (0.0, 1.0)])
def test_nice_ceiling(value, expected):
    from visualcnn.gui.panels.tiling import nice_ceiling

    assert nice_ceiling(value) == pytest.approx(expected)
