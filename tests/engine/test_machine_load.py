"""The reading of how many cores other programs use (engine/machine_load.py)."""

import os
import subprocess
import sys
import threading
import time

import pytest

from visualcnn.engine.machine_load import OtherPrograms

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _stat(path, busy_ticks, idle_ticks, cpus=None):
    cpus = cpus or len(os.sched_getaffinity(0))
    # user nice system idle iowait irq softirq steal guest guest_nice
    lines = [f"cpu  {busy_ticks - 20} 0 10 {idle_ticks} 5 5 0 5 0 0"]
    lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(cpus)]
    path.write_text("\n".join(lines + ["intr 0", "ctxt 0"]) + "\n")


@pytest.fixture
def linux_only():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("the reading is Linux's /proc/stat")


def test_others_are_the_machine_busy_time_minus_our_own(tmp_path, linux_only):
    stat, clock, own = tmp_path / "stat", _Clock(), [0.0]
    _stat(stat, 1000, 5000)
    reader = OtherPrograms(str(stat), clock=clock, own_cpu=lambda: own[0])
    assert reader.cpus == len(os.sched_getaffinity(0))
    clock.now, own[0] = 0.05, 0.01
    assert reader.cores_in_use() is None  # too soon: kept for the next call
    # 0.2 s later the machine was busy 1.5 core-seconds per second (30 ticks at 100 Hz =
    # 0.3 s); we used 0.1 s of it: others 0.2 s / 0.2 s = 1 core
    _stat(stat, 1000 + round(0.3 * HZ), 5000 + round(0.1 * HZ))
    clock.now, own[0] = 0.2, 0.1
    assert reader.cores_in_use() == pytest.approx(1.0)
    # iowait and idle are not busy; steal is (capacity we did not get)
    stat.write_text(stat.read_text().replace(f" 5 5 0 5 ", f" {5 + HZ} 5 0 {5 + round(0.2 * HZ)} ", 1))
    clock.now = 0.4
    assert reader.cores_in_use() == pytest.approx(1.0)


def test_no_reading_after_a_long_pause_nor_without_the_file(tmp_path, linux_only):
    stat, clock = tmp_path / "stat", _Clock()
    _stat(stat, 1000, 5000)
    reader = OtherPrograms(str(stat), clock=clock, own_cpu=lambda: 0.0)
    clock.now = OtherPrograms.MAX_AGE + 1  # the window stood idle: that average is stale
    assert reader.cores_in_use() is None
    _stat(stat, 1000 + HZ // 10, 5000)
    clock.now += 0.2
    assert reader.cores_in_use() == pytest.approx(0.5)
    assert OtherPrograms(str(tmp_path / "missing")).cores_in_use() is None


def test_a_stat_file_of_other_cpus_gives_no_reading(tmp_path, linux_only):
    # a container that shows the host's /proc/stat: its busy time is not about our cores
    stat = tmp_path / "stat"
    _stat(stat, 1000, 5000, cpus=len(os.sched_getaffinity(0)) + 6)
    reader = OtherPrograms(str(stat))
    assert reader.cpus is None and reader.cores_in_use() is None


def test_a_real_busy_program_reads_as_a_core_and_our_own_work_does_not(linux_only):
    reader = OtherPrograms()
    if reader.cpus is None:
        pytest.skip("no /proc/stat for this process's CPUs here")
    reader.cores_in_use()
    time.sleep(0.5)
    before = reader.cores_in_use()  # whatever else this machine runs now
    if before is None or before > reader.cpus - 1.2:
        pytest.skip(f"no free core here to measure a busy program on ({before} in use)")
    stop = time.perf_counter() + 0.5
    spinner = threading.Thread(target=lambda: [None for _ in iter(lambda: time.perf_counter() < stop, False)])
    spinner.start()
    spinner.join()
    ours = reader.cores_in_use()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the interpreter starting is part of it too; read a clean span
        reader.cores_in_use()
        time.sleep(0.5)
        theirs = reader.cores_in_use()
    finally:
        busy.kill()
        busy.wait()
    assert None not in (ours, theirs)
    assert ours < before + 0.5, f"our own busy thread read as {ours - before:.2f} cores of others"
    assert theirs > before + 0.6, f"a busy program read as {theirs - before:.2f} cores"
