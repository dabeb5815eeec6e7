"""The README's quick start is what CI runs, its apt list is what Qt needs, its commands work anywhere."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()

# Libraries every Linux system has, or that apt pulls in as dependencies of the listed packages.
BASE_LIBRARIES = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|"
                            r"libz|libzstd|libXau|libXdmcp|libpcre2-8|libexpat|libpng16|libbrotli\w*|libbsd|libmd|"
                            r"libsystemd|libcap|libgcrypt|liblzma|liblz4|libgpg-error|libffi|libuuid|libblkid|"
                            r"libmount|libselinux|libgthread-2\.0|libGLX|libGLdispatch)\.so")


def section(title):
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def quick_start_commands():
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", section("Quick start"), flags=re.S)


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    commands = quick_start_commands()
    assert len(commands) == 2
    install_and_open, run_tests = commands
    assert "visualcnn" in install_and_open and "pytest" in run_tests
    ci_lines = [line.strip() for line in CI.splitlines()]
    assert run_tests.strip() in ci_lines


def readme_apt_packages():
    lines = [m for m in re.findall(r"`sudo apt-get install ([^`]+)`", section("Quick start")) if "libxcb1" in m]
    assert len(lines) == 1, "the quick start names the libraries in one apt-get line"
    return lines[0].split()


def ci_apt_packages():
    match = re.search(r'QT_LIBS="([^"]+)"', CI)
    assert match, ".ci/run keeps the list in QT_LIBS"
    return match.group(1).split()


def test_ci_installs_exactly_the_readme_apt_list_plus_xvfb():
    assert ci_apt_packages() == readme_apt_packages()
    assert re.search(r"apt-get install .*\$QT_LIBS xvfb xauth", CI)


def test_ci_opens_the_real_window_on_xcb_before_the_tests():
    smoke = CI.index("QT_QPA_PLATFORM=xcb visualcnn gui --quit-after")
    assert "xvfb-run" in CI[CI.rindex("\n", 0, smoke - 60):smoke]
    assert smoke < CI.index('pip install -e ".[test]" && python -m pytest')
    assert "set -euo pipefail" in CI


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="Linux with ldd")
def test_readme_apt_list_covers_every_library_of_qts_xcb_plugin():
    from visualcnn.platform_check import PACKAGES, plugin_path

    plugin = plugin_path("xcb")
    if plugin is None:
        pytest.skip("PySide6 has no xcb plugin here")
    qt_dir = str(plugin.parents[2])
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip() and qt_dir not in line}
    names |= {line.split()[0] for line in out.splitlines() if "not found" in line}
    packages = set(readme_apt_packages())
    unknown = sorted(n for n in names if n not in PACKAGES and not BASE_LIBRARIES.match(n)
                     and not n.startswith(("libQt6", "/")))
    assert unknown == [], f"new libraries Qt needs: add their packages to PACKAGES, README and .ci/run: {unknown}"
    needed = sorted({PACKAGES[n] for n in names if n in PACKAGES and not BASE_LIBRARIES.match(n)})
    assert set(needed) <= packages, f"missing from the README's apt list: {sorted(set(needed) - packages)}"


def test_cli_section_commands_need_no_checkout_paths():
    cli = section("The command line")
    commands = re.findall(r"`(visualcnn [^`]+)`", cli)
    assert commands and not [c for c in commands if "resources/" in c]


def test_readme_summary_command_works_from_any_folder(tmp_path):
    cli = section("The command line")
    command = re.search(r"`(visualcnn summary \S+)` prints exactly what Keras prints", cli).group(1)
    table = cli.split("prints exactly what Keras prints:\n\n```\n", 1)[1].split("\n```", 1)[0]
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-m", "visualcnn", *command.split()[1:]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == table + "\n"
