"""`visualcnn [FILE]` / `visualcnn gui [FILE] [--screenshot OUT.png]`: the builder window.

--screenshot renders the real window offscreen to a PNG and exits, for the README and
tests; it uses a throw-away settings file so a user's saved layout never leaks into it.
--quit-after opens the real window and closes it after a few seconds: CI's start-up check
on a real (virtual) display. Before Qt starts, platform_check says in one line why no
window can open here (Qt itself would abort); Ctrl-C in the terminal closes the window.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tempfile
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", nargs="?", help="a model file to open, or a preset name such as lenet5")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="render the window offscreen to this PNG and exit")
    parser.add_argument("--size", default="1440x900", metavar="WxH",
                        help="window size for --screenshot (default 1440x900)")
    parser.add_argument("--select", type=int, default=1, metavar="N",
                        help="block to select for --screenshot, counting from 1 (default 1)")
    parser.add_argument("--scale", type=float, default=None,
                        help="UI scale factor, e.g. 2 to check 200%% scaling (sets QT_SCALE_FACTOR)")
    parser.add_argument("--quit-after", type=float, default=None, metavar="SECONDS",
                        help="open the window, then close it after SECONDS and exit 0 (a start-up check)")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1440x900, received {text!r}") from None
    if not (320 <= w <= 10000 and 240 <= h <= 10000):
        raise ValueError(f"--size {text} is out of range")
    return w, h


def run(args) -> int:
    if args.scale is not None:
        if not 0.5 <= args.scale <= 4:
            raise ValueError(f"--scale must be between 0.5 and 4, received {args.scale}")
        os.environ["QT_SCALE_FACTOR"] = f"{args.scale:g}"
    if args.screenshot:
        size = _parse_size(args.size)
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _check_display()
        return _screenshot(args, size)

    if args.quit_after is not None and not 0 < args.quit_after <= 3600:
        raise ValueError(f"--quit-after must be between 0 and 3600 seconds, received {args.quit_after:g}")
    _check_display()

    from PySide6.QtWidgets import QApplication  # noqa: F401 - imported late: `visualcnn summary` stays fast

    from ..gui.app import create_application
    from ..gui.main_window import MainWindow

    app = create_application()
    # Before the window is built: a Ctrl-C while it loads must not become a traceback
    # printed from inside some slot (PySide reports exceptions raised in slots and carries on).
    holder: list = []
    interrupted = _close_on_ctrl_c(app, holder)
    window = MainWindow()
    holder.append(window)
    if args.file:
        window.open_file(args.file, confirm=False)
    else:
        presets = [p for p in _presets() if p.stem == "seed_cnn"]
        if presets and not window.recent_files():
            window.load_preset(presets[0])  # a first start shows a working network, not a blank page
    window.show()
    if args.quit_after is None:
        from ..gui.welcome import maybe_show_welcome

        maybe_show_welcome(window)  # this user's first launch only: where to start (gui/welcome.py)
    if args.quit_after is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.quit_after * 1000), app.quit)
    # The window's ~170,000 Python objects live until exit; freezing them keeps full garbage
    # collections (which hold the GIL) from walking them: no 60 ms stalls while drawing or training.
    gc.freeze()
    code = app.exec()
    if interrupted:
        print("error: interrupted", file=sys.stderr)
        return 130
    if args.quit_after is not None:
        print(f"the window opened on Qt's {app.platformName()} platform and closed after {args.quit_after:g} s")
    return code


def _exit_interrupted(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    try:
        print("error: interrupted", file=sys.stderr, flush=True)
    finally:
        os._exit(130)


def _check_display() -> None:
    """Qt aborts (exit 134) when its platform cannot load; say why in one line instead."""
    from ..platform_check import display_problem

    problem = display_problem()
    if problem:
        raise ValueError(problem)


def _close_on_ctrl_c(app, holder: list) -> list:
    """Ctrl-C in the terminal closes the window (holder[0]) as its close button would (asking
    about unsaved work); a second Ctrl-C ends the program at once. Without this, Python only
    sees the signal when some slot next runs, and prints a KeyboardInterrupt traceback from it.
    The close runs from the event loop, so an early Ctrl-C closes the window once it is shown."""
    from PySide6.QtCore import QTimer

    interrupted: list = []

    def close_window() -> None:
        if not holder or holder[0].close():
            interrupted.append(True)
            app.quit()
        else:  # the user chose Cancel in the unsaved-work prompt: keep going, Ctrl-C works again
            signal.signal(signal.SIGINT, on_sigint)

    def on_sigint(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C while a prompt is open ends it all
        QTimer.singleShot(0, app, close_window)

    signal.signal(signal.SIGINT, on_sigint)
    # Qt's event loop runs in C++; this tick lets Python run its signal handlers promptly.
    ticker = QTimer(app)
    ticker.timeout.connect(lambda: None)
    ticker.start(200)
    return interrupted


def _presets():
    from ..gui.main_window import preset_paths
    return preset_paths()


def _screenshot(args, size: tuple[int, int]) -> int:
    from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QSettings, QTimer

    from ..engine.model_io import load_model_file, write_bytes_atomic
    from ..gui.app import create_application
    from ..gui.main_window import MainWindow

    if args.file:
        load_model_file(args.file)  # fail with the parse error before any window exists
    app = create_application()
    # While Qt's loops run, a KeyboardInterrupt would surface inside some slot as a printed
    # traceback; nothing is worth keeping half-way through a screenshot, so end at once.
    signal.signal(signal.SIGINT, _exit_interrupted)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(os.path.join(tmp, "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.resize(*size)
        window.fit_docks()
        if args.file:
            window.open_file(args.file, confirm=False)
        window.show()
        _settle(QEventLoop, QTimer, app)
        window.pipeline.list_widget.select_row(args.select - 1)  # after layout, so it scrolls into view
        _settle(QEventLoop, QTimer, app)
        pixmap = window.grab()
        out = Path(args.screenshot)
        out.parent.mkdir(parents=True, exist_ok=True)
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not pixmap.save(buffer, "PNG"):
            raise OSError(f"cannot encode the window as PNG for {out}")
        # Like a model file: through links, keeping the mode, never over a FIFO or device.
        write_bytes_atomic(out, bytes(buffer.data()))
        window.undo_stack.setClean()
        window.close()
        window.deleteLater()
        del settings
    print(f"wrote {args.screenshot} ({pixmap.width()}x{pixmap.height()})")
    return 0


def _settle(QEventLoop, QTimer, app) -> None:  # noqa: N803
    """Let layouts and delayed item layouts run before grabbing."""
    loop = QEventLoop()
    QTimer.singleShot(300, loop.quit)
    loop.exec()
    app.processEvents()
