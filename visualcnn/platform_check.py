"""Can the window open here? Answered before Qt is started, because Qt cannot answer it.

When its platform plugin cannot load (no display, a missing system library, an X server
that refuses the connection) Qt prints a paragraph that often blames the wrong library and
then aborts the process (exit 134): no Python code runs after that. So `visualcnn` checks
first, without importing Qt: which platform Qt will pick, whether that plugin's shared
libraries are all installed (``ldd``), and whether the X server answers (libxcb's own
connect call, through ctypes). The result is one line saying what is wrong and what to do.
Only Linux needs this; elsewhere the platform plugins ship with the wheel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Debian/Ubuntu package of each shared library Qt's xcb platform (and Qt itself) loads, as
# `ldd .../PySide6/Qt/plugins/platforms/libqxcb.so` lists them. README and .ci/run install them.
PACKAGES = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
}

SCREENSHOT_HINT = "or render the window without a display: visualcnn gui --screenshot window.png"


def display_problem(env: dict | None = None) -> str | None:
    """None when Qt can open a window here, else one line: what is wrong and how to fix it."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    requested = env.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        # "xcb", "xcb:option", or a fallback list "wayland;xcb": Qt takes the first that loads.
        names = [part.split(":", 1)[0].strip() for part in requested.split(";") if part.strip()]
    elif env.get("WAYLAND_DISPLAY") and env.get("DISPLAY"):
        names = ["wayland", "xcb"]
    elif env.get("WAYLAND_DISPLAY"):
        names = ["wayland"]
    elif env.get("DISPLAY"):
        names = ["xcb"]
    else:
        return ("no display: DISPLAY and WAYLAND_DISPLAY are not set, so the window has nowhere to open; "
                "run visualcnn in a desktop session, or under a virtual display (xvfb-run visualcnn), "
                + SCREENSHOT_HINT)
    problems = [_platform_problem(name, env) for name in names]
    return None if any(p is None for p in problems) else problems[0]


def _platform_problem(name: str, env) -> str | None:
    plugin = plugin_path(name)
    if plugin is None:
        available = available_platforms()
        if available and name not in available:
            return (f"the window cannot open: Qt has no platform called {name!r} (QT_QPA_PLATFORM); "
                    f"use one of: {', '.join(available)}, or unset QT_QPA_PLATFORM")
        return None  # not a wheel layout we know: let Qt try
    missing = missing_libraries(plugin)
    if missing:
        packages = sorted({PACKAGES.get(lib, _guess_package(lib)) for lib in missing})
        return (f"the window cannot open: Qt's {name} platform needs {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed; on Debian/Ubuntu run: "
                f"sudo apt-get install {' '.join(packages)}")
    if name == "xcb" and not env.get("DISPLAY"):
        return ("no display: QT_QPA_PLATFORM asks for X11 (xcb) but DISPLAY is not set; run visualcnn in a "
                "desktop session, or under a virtual display (xvfb-run visualcnn), " + SCREENSHOT_HINT)
    if name == "xcb":
        return _x_server_problem(env["DISPLAY"])
    if name == "wayland" and not _wayland_socket(env):
        return (f"the window cannot open: no Wayland display {env.get('WAYLAND_DISPLAY', 'wayland-0')!r} "
                "is running; unset QT_QPA_PLATFORM to use X11, or " + SCREENSHOT_HINT)
    return None


def _platforms_folders() -> list[Path]:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(folder) / "Qt" / "plugins" / "platforms" for folder in spec.submodule_search_locations]


def available_platforms() -> list[str]:
    """The platform plugins PySide6 ships here (xcb, wayland, offscreen, ...)."""
    names = set()
    for folder in _platforms_folders():
        if folder.is_dir():
            names.update(p.name[len("libq"):-len(".so")] for p in folder.glob("libq*.so"))
    return sorted(names)


def plugin_path(name: str) -> Path | None:
    """PySide6's platform plugin file for ``name`` (found without importing Qt)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return None
    for folder in _platforms_folders():
        candidate = folder / f"libq{name}.so"
        if candidate.is_file():
            return candidate
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries the plugin needs (directly or through Qt's own libraries) that
    the dynamic loader cannot find."""
    ldd = shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        missing = re.findall(r"^\s*(\S+)\s+=>\s+not found", out, flags=re.M)
        if out:
            return sorted(set(missing))
    # No ldd: loading the plugin names the first missing library (Qt's loader would load it anyway).
    try:
        ctypes.CDLL(str(plugin), mode=getattr(os, "RTLD_LAZY", 1) | getattr(os, "RTLD_LOCAL", 0))
    except OSError as exc:
        match = re.search(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
        if match:
            return [match.group(1)]
    return []


def _guess_package(soname: str) -> str:
    """Debian's library package naming: libfoo.so.1 -> libfoo1, libfoo-x11.so.0 -> libfoo-x11-0."""
    match = re.fullmatch(r"(lib[\w.+-]+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if not match:
        return soname
    stem, version = match.group(1).lower(), match.group(2)
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def _x_server_problem(display: str) -> str | None:
    """Ask libxcb itself whether the X server answers (what Qt's xcb plugin does first)."""
    try:
        xcb = ctypes.CDLL(ctypes.util.find_library("xcb") or "libxcb.so.1")
    except OSError:
        return None  # missing_libraries would have named it
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode() if display else None, None)
    try:
        failed = not connection or xcb.xcb_connection_has_error(connection)
    finally:
        if connection:
            xcb.xcb_disconnect(connection)
    if failed:
        return (f"the window cannot open: no X server answers on DISPLAY={display!r} (is it running, and may "
                "this user use it?); check DISPLAY, run under a virtual display (xvfb-run visualcnn), "
                + SCREENSHOT_HINT)
    return None


def _wayland_socket(env) -> bool:
    name = env.get("WAYLAND_DISPLAY") or "wayland-0"
    if os.path.isabs(name):
        return os.path.exists(name)
    runtime = env.get("XDG_RUNTIME_DIR")
    return bool(runtime) and os.path.exists(os.path.join(runtime, name))


__all__ = ["display_problem", "missing_libraries", "plugin_path", "PACKAGES"]
