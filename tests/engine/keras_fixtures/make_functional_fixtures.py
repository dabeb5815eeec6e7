"""Regenerate functional_models.json.gz from REAL Keras 3 (not needed to run the tests).

    PYTHONPATH=. KERAS_BACKEND=torch /tmp/venvC/bin/python tests/engine/keras_fixtures/make_functional_fixtures.py [N]

Builds N random Functional models (random_functional.py) from the layer classes VisualCNN
registers that Keras also has (every class is forced into at least one), and N/4 random
Sequential stacks of them. Stores each
model's to_json(), every layer's output shape and parameter counts, and model.summary()
at two widths (and, for half of them, with show_trainable, layer_range and positions).
The tests read the file; Keras is not needed there.
"""

from __future__ import annotations

import gzip
import os
import random
import sys
from pathlib import Path

os.environ["COLUMNS"] = "300"  # rich cuts lines at the console width; keep every table whole
os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from random_functional import case, dumps, random_model, random_sequential, summary_options  # noqa: E402

from visualcnn.engine.layers import LAYER_CLASSES  # noqa: E402


def main(n: int) -> None:
    classes = [c for c in LAYER_CLASSES if hasattr(keras.layers, c)]
    rng = random.Random(20261130)
    cases, seen = [], set()
    for index in range(n):
        missing = [c for c in classes if c not in seen]
        model = random_model(keras, rng, index, classes, must_use=missing[0] if missing else None)
        widths = [76, rng.choice([40, 47, 55, 60, 88, 100, 108, 124, 150])]
        entry = case(keras, model, widths, summary_options(rng, model) if index % 2 else ())
        seen.update(entry["classes"])
        cases.append(entry)
    for index in range(n // 4):  # and the linear case: keras.Sequential stacks of the same classes
        model = random_sequential(keras, rng, index, classes)
        cases.append(case(keras, model, [76, rng.choice([40, 55, 88, 124])], summary_options(rng, model)))
    out = Path(__file__).with_name("functional_models.json.gz")
    out.write_bytes(gzip.compress(dumps({"keras_version": keras.__version__, "classes": classes, "cases": cases}),
                                  mtime=0))
    print(f"{len(cases)} models, classes never used: {sorted(set(classes) - seen) or 'none'} -> {out}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
