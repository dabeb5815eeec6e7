"""How many cores the machine's other programs are using right now (Linux: /proc/stat).

Why: the thread governor (``parallel.ThreadGovernor``) chooses how many threads training
uses by timing steps on each count. Under one competing busy program on a 2-core
laptop those timings cost the run what it is trying to save: a two-thread step waits a
whole time slice whenever the system deschedules one of its workers, and the probe's
13 two-thread steps took 0.18 s of a 2.9 s run. Counting the cores others keep busy
answers "is there room for another worker?" without running one.

The reading is the machine's busy time (/proc/stat's first line: everything but idle and
I/O wait; a virtual machine's steal counts as busy, it is capacity we do not get) minus
this process's own CPU time (``time.process_time``: all its threads, compiler and
window included), per second of wall time. /proc/stat counts in clock ticks (1/100 s),
so a reading needs ``MIN_INTERVAL`` of wall time to be good to about 0.1 core. Measured
on 2 cores while training the seed CNN, one reading every 0.1 s: a quiet machine read
-0.16 to 0.10, one busy program 0.89 to 1.09 beside one thread and 0.73 to 1.02 beside
two. Reading the file takes about 16 microseconds.

Elsewhere (no /proc/stat), and where /proc/stat describes other CPUs than the ones this
process may run on (a container that shows the host's), there is no reading: ``None``.
"""

import functools
import os
import time

__all__ = ["OtherPrograms", "other_programs"]


class OtherPrograms:
    """Cores used by other programs, averaged since the previous reading."""

    # Shorter, and one clock tick is more than 0.1 core of the reading.
    MIN_INTERVAL = 0.1
    # Longer, and the average says little about now (the window may have stood idle for
    # minutes before Train): start again instead.
    MAX_AGE = 10.0

    def __init__(self, path: str = "/proc/stat", clock=time.perf_counter, own_cpu=time.process_time):
        self._path = path
        self._clock = clock
        self._own_cpu = own_cpu
        self.cpus = self._usable_cpus()
        self._last = self._sample() if self.cpus else None

    def _usable_cpus(self):
        try:
            with open(self._path, "rb") as f:
                listed = sum(1 for line in f if line.startswith(b"cpu") and line[3:4].isdigit())
            self._tick = float(os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, AttributeError):
            return None
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return listed if listed and listed == usable else None

    def _sample(self):
        try:
            with open(self._path, "rb") as f:
                fields = f.readline().split()
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        except (OSError, ValueError):
            return None
        if fields[:1] != [b"cpu"] or len(ticks) < 5:
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / self._tick
        return self._clock(), busy, self._own_cpu()

    def cores_in_use(self) -> float | None:
        """Cores the other programs kept busy since the previous reading; None when
        unknown here, when the previous reading is less than MIN_INTERVAL ago (it is kept
        for the next call), or more than MAX_AGE ago (a new one starts)."""
        if self._last is None:
            self._last = self._sample() if self.cpus else None
            return None
        wall = self._clock() - self._last[0]
        if wall < self.MIN_INTERVAL:
            return None
        now = self._sample()
        last, self._last = self._last, now
        if now is None or wall > self.MAX_AGE:
            return None
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0]))


@functools.cache
def other_programs() -> OtherPrograms:
    """The process's one reader; its first reading starts when the engine is imported,
    so the first training run can already ask (usually a second or more later)."""
    return OtherPrograms()
