"""Make the bundled lessons' pictures from real MNIST digits and the engine's own layers.

    python resources/lessons/make_pictures.py          # writes resources/lessons/pictures/*.png

Every image a lesson shows is computed here, not drawn by hand: the digits are the bundled
MNIST test images, the edge maps come from an engine Conv2D holding the two edge kernels,
the stride picture from an engine Conv2D(1, 2, strides=2), the pooling picture from engine
MaxPooling2D layers, the receptive-field squares from the engine's shape analysis. Run it
again after changing a layer's arithmetic: the pictures follow. Output is deterministic
(fixed digits, no training), small (a few KB each) and greyscale PNG.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from visualcnn.engine import Sequential  # noqa: E402
from visualcnn.engine.datasets import load_mnist  # noqa: E402
from visualcnn.engine.layers import Conv2D, Input, MaxPooling2D  # noqa: E402

OUT = HERE / "pictures"
# The first test image of each chosen digit: the same digits every run.
DIGIT_FOR = {"edges": 7, "stride": 3, "pooling": 5, "sharing": 2, "field": 4}
# A Sobel-like vertical-edge kernel (bright where ink starts on the left of a stroke) and
# its transpose for horizontal edges: the filters the first layer of a trained CNN resembles.
VERTICAL_EDGE = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
HORIZONTAL_EDGE = VERTICAL_EDGE.T.copy()
LABEL_H = 16
GAP = 8
BACKGROUND = 255


def first_test_digit(digit: int) -> np.ndarray:
    """The first MNIST test image showing `digit`, float32 in [0, 1], shape (28, 28)."""
    (_, _), (x_test, y_test) = load_mnist()
    index = int(np.flatnonzero(y_test == digit)[0])
    return x_test[index].astype(np.float32) / 255.0


def to_grey(values: np.ndarray, signed: bool = False) -> Image.Image:
    """A 2-D float map as an 8-bit picture: ink dark on white for images; for signed maps
    (edge responses) mid-grey is 0, darker negative, lighter positive... inverted so that a
    strong response is dark like ink."""
    v = np.asarray(values, np.float32)
    if signed:
        scale = float(np.abs(v).max()) or 1.0
        grey = 128 - 127 * (v / scale)
    else:
        top = float(v.max()) or 1.0
        grey = 255 - 255 * (v / top)
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), mode="L")


def enlarge(img: Image.Image, factor: int) -> Image.Image:
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def strip(panels: list[tuple[Image.Image, str]]) -> Image.Image:
    """Panels side by side, bottoms aligned, each with its caption underneath."""
    font = ImageFont.load_default()
    height = max(p.height for p, _ in panels) + LABEL_H + GAP
    width = sum(max(p.width, 8 + 6 * len(c)) for p, c in panels) + GAP * (len(panels) + 1)
    sheet = Image.new("L", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    x = GAP
    top = GAP // 2
    for picture, caption in panels:
        cell = max(picture.width, 8 + 6 * len(caption))
        y = top + (height - LABEL_H - GAP - picture.height)
        sheet.paste(picture, (x + (cell - picture.width) // 2, y))
        draw.text((x, height - LABEL_H), caption, fill=0, font=font)
        x += cell + GAP
    return sheet


def conv_maps(image: np.ndarray, kernels: list[np.ndarray], strides: int = 1) -> np.ndarray:
    """image (H, W) through an engine Conv2D holding `kernels` (no bias): (H', W', len(kernels))."""
    k = kernels[0].shape[0]
    model = Sequential([Input(shape=(*image.shape, 1)), Conv2D(len(kernels), k, strides=strides)])
    model.build(seed=0)
    weights = np.stack(kernels, axis=-1)[:, :, None, :].astype(np.float32)
    model.set_weights([weights, np.zeros(len(kernels), np.float32)])
    return model.predict(image[None, :, :, None])[0]


def max_pooled(image: np.ndarray, times: int) -> list[np.ndarray]:
    """image (H, W) after 1..times engine MaxPooling2D(2) layers, one map per stage."""
    layers = [Input(shape=(*image.shape, 1))] + [MaxPooling2D(2) for _ in range(times)]
    model = Sequential(layers)
    model.build(seed=0)
    acts = model.activations(image[None, :, :, None])
    return [acts[layer.name][0, :, :, 0] for layer in model.layers]


def picture_edges() -> Image.Image:
    digit = first_test_digit(DIGIT_FOR["edges"])
    maps = conv_maps(digit, [VERTICAL_EDGE, HORIZONTAL_EDGE])
    return strip([(enlarge(to_grey(digit), 4), "digit 28x28"),
                  (enlarge(to_grey(maps[:, :, 0], signed=True), 4), "vertical edges 26x26"),
                  (enlarge(to_grey(maps[:, :, 1], signed=True), 4), "horizontal edges 26x26")])


def picture_stride() -> Image.Image:
    digit = first_test_digit(DIGIT_FOR["stride"])
    big = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((200, 200), Image.BILINEAR),
                     np.float32) / 255.0
    # A 2x2 averaging kernel with stride 2: every output value summarises its own 2x2 patch.
    halved = conv_maps(big, [np.full((2, 2), 0.25, np.float32)], strides=2)[:, :, 0]
    return strip([(to_grey(big), "input 200x200"), (to_grey(halved), "Conv2D(k=2, s=2): 100x100")])


def picture_pooling() -> Image.Image:
    digit = first_test_digit(DIGIT_FOR["pooling"])
    stages = max_pooled(digit, 2)
    return strip([(enlarge(to_grey(digit), 4), "28x28"),
                  (enlarge(to_grey(stages[0]), 4), "pooled 14x14"),
                  (enlarge(to_grey(stages[1]), 4), "pooled 7x7")])


def boxes_on_digit(digit: np.ndarray, boxes: list[tuple[int, int, int]], scale: int = 8) -> Image.Image:
    """The digit enlarged, with square outlines (top, left, side in pixels of the 28x28)."""
    picture = enlarge(to_grey(digit), scale).convert("L")
    light = Image.fromarray((255 - (255 - np.asarray(picture)) // 3).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(light)
    for top, left, side in boxes:
        draw.rectangle([left * scale, top * scale, (left + side) * scale - 1, (top + side) * scale - 1],
                       outline=0, width=2)
    return light


def picture_sharing() -> Image.Image:
    digit = first_test_digit(DIGIT_FOR["sharing"])
    return strip([(boxes_on_digit(digit, [(5, 8, 3), (12, 14, 3), (20, 6, 3)]),
                   "one 3x3 kernel, three places")])


def picture_receptive_field() -> Image.Image:
    """Squares the size of the engine's receptive field after one, two and three 3x3 convs."""
    from visualcnn.engine.analysis import analyse

    layers = [Conv2D(16, 3), Conv2D(16, 3), Conv2D(16, 3)]
    model = Sequential([Input(shape=(28, 28, 1)), *layers])
    sizes = [int(row.inference.field.size[0]) for row in analyse(model.input_shape, model.layers).rows]
    centre = 14
    boxes = [(centre - s // 2, centre - s // 2, s) for s in sizes]
    caption = "fields " + ", ".join(f"{s}x{s}" for s in sizes)
    return strip([(boxes_on_digit(first_test_digit(DIGIT_FOR["field"]), boxes), caption)])


PICTURES = {
    "edges.png": picture_edges,
    "stride.png": picture_stride,
    "pooling.png": picture_pooling,
    "sharing.png": picture_sharing,
    "receptive_field.png": picture_receptive_field,
}


def main(out: Path = OUT) -> None:
    out.mkdir(exist_ok=True)
    for name, make in PICTURES.items():
        target = out / name
        tmp = target.with_suffix(".tmp.png")
        make().save(tmp, optimize=True)
        tmp.replace(target)  # never a half-written picture
        print(f"{target.name}: {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
