"""Do the exports predict what VisualCNN predicts? For each trained model file: export it to
`.keras`, a PyTorch folder and `.onnx`, load each in its own framework and compare the
probabilities on the first 1,000 MNIST test digits (largest difference, and the share of
digits whose predicted class is the same).

Needs Keras 3, PyTorch and onnxruntime (never dependencies of the app):

    visualcnn train seed_cnn --save seed_cnn.json
    KERAS_BACKEND=torch python benchmarks/compare_exports.py seed_cnn.json [more.json ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def _exported_torch_module(folder: Path):
    spec = importlib.util.spec_from_file_location("exported_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_model()


def compare(path: str, x: np.ndarray, y: np.ndarray) -> str:
    import keras
    import onnxruntime
    import torch

    from visualcnn.engine import load_model
    from visualcnn.engine.export import export

    model = load_model(path)
    ours = model.predict(x)
    out = Path(tempfile.mkdtemp())
    theirs = {}
    export(model, out / "m.keras", "keras")
    theirs["keras"] = keras.saving.load_model(out / "m.keras").predict(x, verbose=0)
    export(model, out / "pytorch", "pytorch")
    with torch.no_grad():
        theirs["pytorch"] = _exported_torch_module(out / "pytorch")(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    export(model, out / "m.onnx", "onnx")
    theirs["onnx"] = onnxruntime.InferenceSession(str(out / "m.onnx")).run(None, {"input": x})[0]
    cells = [Path(path).name, f"accuracy {np.mean(ours.argmax(1) == y):.3f}"]
    for name, probabilities in theirs.items():
        same = np.mean(probabilities.argmax(1) == ours.argmax(1))
        cells.append(f"{name} max diff {np.abs(probabilities - ours).max():.2e}, same class {same:.3f}")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="trained model files (visualcnn train ... --save)")
    parser.add_argument("--images", type=int, default=1000, help="test digits to compare on")
    args = parser.parse_args()
    from visualcnn.engine.datasets import load_mnist

    _, (x_test, y_test) = load_mnist()
    x = (x_test[:args.images, ..., None] / 255.0).astype(np.float32)
    for path in args.models:
        print(compare(path, x, y_test[:args.images]), flush=True)


if __name__ == "__main__":
    main()
