"""Make docs/screenshots/draw.png: the real window, Draw tab, a hand-drawn 3.

    QT_QPA_PLATFORM=offscreen python docs/make_draw_screenshot.py [TRAINED.json]

Without TRAINED.json it first trains the seed CNN preset for one epoch (about half a
minute) exactly as `visualcnn train resources/presets/seed_cnn.json --save ...` would.
The digit is drawn as strokes on the canvas, as a user's mouse would.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots" / "draw.png"


def arc(cx, cy, r, start_deg, end_deg, steps=24):
    return [(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)))
            for a in (start_deg + (end_deg - start_deg) * i / steps for i in range(steps + 1))]


def main() -> int:
    from visualcnn.cli import main as cli

    trained = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "seed_trained.json"
    if not trained.exists():
        cli(["train", str(ROOT / "resources" / "presets" / "seed_cnn.json"), "--epochs", "1", "--save", str(trained)])

    from PySide6.QtCore import QSettings

    from visualcnn.gui.app import create_application
    from visualcnn.gui.main_window import MainWindow

    app = create_application()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1440, 900)
    window.show()
    window.open_file(trained, confirm=False)
    window.tabs.setCurrentWidget(window.draw_page)
    canvas = window.draw_panel.canvas
    # A slightly wobbly, off-centre 3, the way people draw it.
    canvas.add_stroke(arc(0.46, 0.32, 0.16, -165, 95) + arc(0.47, 0.64, 0.18, -95, 150))
    for _ in range(10):
        app.processEvents()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(OUT))
    print(f"wrote {OUT}; answer {window.draw_panel._answer.text()} {window.draw_panel._confidence.text()}")
    window.undo_stack.setClean()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
