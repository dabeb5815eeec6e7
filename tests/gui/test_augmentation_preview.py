"""The augmentation preview under the Build tab's pipeline: shown only with Random* layers,
the training images through them, redrawn when their settings change."""

from __future__ import annotations

import numpy as np


def strip_pixels(label) -> np.ndarray:
    image = label.pixmap().toImage().convertToFormat(label.pixmap().toImage().Format.Format_RGB888)
    return np.array(image.constBits(), copy=True)


def test_the_strip_follows_the_random_layers(qtbot, seed_window):
    from visualcnn.gui.augmentation_preview import augment, augmentation_layers

    preview = seed_window.dataset_ui.preview
    document = seed_window.document
    qtbot.wait(300)
    assert preview.isHidden()  # the seed CNN has no augmentation layer
    document.insert_layer(0, "RandomRotation", {"factor": 0.05})
    qtbot.waitUntil(lambda: not preview.isHidden() and not preview.augmented.pixmap().isNull(), timeout=60_000)
    assert "random_rotation" in preview.note.text()
    small = strip_pixels(preview.augmented)
    originals = strip_pixels(preview.originals)
    assert not np.array_equal(small, originals)  # rotated digits differ from the originals
    document.set_layer_config(0, {"factor": 0.4, "fill_mode": "constant"})
    qtbot.waitUntil(lambda: not np.array_equal(strip_pixels(preview.augmented), small), timeout=10_000)
    # what is shown is the layer's own training forward on the first images
    data = seed_window.train_panel.dataset()
    chain = augmentation_layers(document.layers)
    assert [layer.class_name for layer in chain] == ["RandomRotation"]
    out = augment(chain, np.asarray(data.x_train[:2], np.float32), 0)
    assert out.shape == (2, 28, 28, 1) and not np.allclose(out, data.x_train[:2])
    before = strip_pixels(preview.augmented)
    preview.reroll.click()
    assert not np.array_equal(strip_pixels(preview.augmented), before)  # a new random draw
    document.remove_layer(0)
    qtbot.waitUntil(preview.isHidden, timeout=5_000)


def test_random_layers_not_at_the_start_are_explained(qtbot, seed_window):
    preview = seed_window.dataset_ui.preview
    seed_window.document.insert_layer(1, "RandomFlip", {"mode": "horizontal"})
    qtbot.waitUntil(lambda: not preview.isHidden(), timeout=10_000)
    qtbot.waitUntil(lambda: "right after the input" in preview.note.text(), timeout=10_000)
    assert preview.augmented.pixmap().isNull()
