"""platform_check: why the window cannot open, decided before Qt starts (Qt would abort)."""

import sys

import pytest

from visualcnn import platform_check


@pytest.fixture
def linux_with_all_libraries(monkeypatch, tmp_path):
    monkeypatch.setattr(platform_check.sys, "platform", "linux")
    monkeypatch.setattr(platform_check, "plugin_path", lambda name: tmp_path)
    monkeypatch.setattr(platform_check, "missing_libraries", lambda plugin: [])
    monkeypatch.setattr(platform_check, "_x_server_problem", lambda display: None)


def test_no_display_variables(linux_with_all_libraries):
    message = platform_check.display_problem({})
    assert message.startswith("no display:") and "xvfb-run" in message and "--screenshot" in message


def test_xcb_requested_without_display(linux_with_all_libraries):
    assert "DISPLAY is not set" in platform_check.display_problem({"QT_QPA_PLATFORM": "xcb"})


def test_display_set_and_libraries_present_is_fine(linux_with_all_libraries):
    assert platform_check.display_problem({"DISPLAY": ":0"}) is None
    assert platform_check.display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert platform_check.display_problem({"QT_QPA_PLATFORM": "xcb:dpi=96", "DISPLAY": ":0"}) is None


def test_wayland_falls_back_to_x11_when_both_exist(linux_with_all_libraries, monkeypatch):
    monkeypatch.setattr(platform_check, "missing_libraries",
                        lambda plugin: ["libwayland-cursor.so.0"] if plugin == "wayland" else [])
    monkeypatch.setattr(platform_check, "plugin_path", lambda name: name)
    assert platform_check.display_problem({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) is None
    message = platform_check.display_problem({"WAYLAND_DISPLAY": "wayland-0"})
    assert "libwayland-cursor0" in message


def test_other_systems_are_not_checked(monkeypatch):
    monkeypatch.setattr(platform_check.sys, "platform", "darwin")
    assert platform_check.display_problem({}) is None


@pytest.mark.parametrize("soname,package", [("libxcb-icccm.so.4", "libxcb-icccm4"),
                                            ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
                                            ("libfoo.so.2.1", "libfoo2"), ("libbar2.so.0", "libbar2-0")])
def test_debian_package_names(soname, package):
    assert platform_check.PACKAGES.get(soname, platform_check._guess_package(soname)) == package


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd")
def test_missing_library_is_found_with_ldd(tmp_path):
    import shutil
    import subprocess

    if not (shutil.which("gcc") and shutil.which("ldd")):
        pytest.skip("needs gcc and ldd")
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int dep(void); int plugin(void) { return dep(); }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libd1gone.so.7", tmp_path / "dep.c",
                    "-Wl,-soname,libd1gone.so.7"], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", tmp_path / "libqfake.so", tmp_path / "plugin.c",
                    "-L", tmp_path, "-l:libd1gone.so.7"], check=True)
    (tmp_path / "libd1gone.so.7").unlink()  # now the loader cannot find it, as on a fresh machine
    assert platform_check.missing_libraries(tmp_path / "libqfake.so") == ["libd1gone.so.7"]


def test_unknown_platform_name_lists_the_real_ones(monkeypatch):
    monkeypatch.setattr(platform_check.sys, "platform", "linux")
    monkeypatch.setattr(platform_check, "plugin_path", lambda name: None)
    monkeypatch.setattr(platform_check, "available_platforms", lambda: ["offscreen", "xcb"])
    message = platform_check.display_problem({"QT_QPA_PLATFORM": "foo"})
    assert "no platform called 'foo'" in message and "offscreen, xcb" in message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux plugin layout")
def test_available_platforms_are_the_shipped_plugins():
    names = platform_check.available_platforms()
    assert "offscreen" in names and "xcb" in names
