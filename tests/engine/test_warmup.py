"""engine.warmup: the dry run finds every kernel a session needs, and warm_up compiles them.

Each check runs in a fresh interpreter, where no kernel is compiled in memory yet (the
on-disk cache may hold them: loading counts as compiling here, and is what makes these
tests quick). Nothing here measures time.
"""

import json
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core.dispatcher import Dispatcher
    from visualcnn.engine import Sequential, layers as L, warmup

    def make():
        m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(2),
                        L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                        L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m
""")


def _run(body: str) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_warm_up_compiles_everything_a_training_session_uses_and_reports_progress():
    out = _run("""
        m = make()
        events = []
        warmup.warm_up(m, progress=lambda done, total: events.append((done, total)))
        left = [str(u) for u in warmup.kernels_needed(m)]

        # The real session afterwards must not compile anything more.
        original = Dispatcher._compile_for_args
        late = []
        def spy(self, *args, **kws):
            late.append(self.__name__)
            return original(self, *args, **kws)
        Dispatcher._compile_for_args = spy
        rng = np.random.default_rng(0)
        x = rng.random((64, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, 64)
        m.fit(x, y, batch_size=64, epochs=1, verbose=0)
        m.predict(x[:1])
        m.predict(x[:1], serial=True)
        m.activations(x[:1])
        m.input_gradients(x[:1], 3)
        print(json.dumps({"events": events, "left": left, "late": late}))
    """)
    events = out["events"]
    total = events[0][1]
    assert total >= 5, events  # conv, pool, their backwards, the optimizer at least
    assert events[0] == [0, total] and events[-1] == [total, total]
    assert [d for d, _ in events] == list(range(total + 1))
    assert out["left"] == []
    assert out["late"] == [], f"compiled after warm-up: {out['late']}"


def test_dry_run_leaves_the_model_untouched_and_compiles_nothing_needed_later():
    out = _run("""
        m = make()
        m.build()
        before = [w.copy() for w in m.get_weights()]
        uses = warmup.kernels_needed(m)
        same = all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
        print(json.dumps({"same": same, "n": len(uses), "names": [u.name for u in uses],
                          "uncompiled": sum(not u.is_compiled() for u in uses)}))
    """)
    assert out["same"]
    assert any("conv" in name for name in out["names"]) and any("pool" in name for name in out["names"])
    # the dry run compiles only what python code reads back (the MXCSR helpers), not the kernels
    assert out["uncompiled"] >= out["n"] - 3 and out["n"] > 3


def test_cancelled_warm_up_stops_between_kernels():
    out = _run("""
        m = make()
        events = []
        warmup.warm_up(m, progress=lambda d, t: events.append((d, t)), cancelled=lambda: len(events) >= 2)
        print(json.dumps({"events": events, "left": len(warmup.kernels_needed(m))}))
    """)
    events = out["events"]
    assert len(events) == 2 and events[-1][0] == 1
    assert out["left"] > 0


def test_helper_processes_share_the_compiling_and_leave_nothing_behind(tmp_path):
    """jobs=2 with an empty compile cache: a helper process compiles part of the kernels
    into the cache, this process loads them; no temporary directory or process remains."""
    import os

    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    cache.mkdir()
    tmp.mkdir()
    code = PRELUDE + textwrap.dedent("""
        import os
        from visualcnn.engine import warmup as w
        m = Sequential([L.Input(shape=(8, 8, 1)), L.Flatten(), L.Dense(16, activation="relu"),
                        L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        started = []
        real_popen = __import__("subprocess").Popen
        def popen(*a, **k):
            p = real_popen(*a, **k)
            started.append(p)
            return p
        __import__("subprocess").Popen = popen
        events = []
        at_dry_run = []
        real_needed = w.kernels_needed
        def needed(*a, **k):
            at_dry_run.append(len(started))
            return real_needed(*a, **k)
        w.kernels_needed = needed
        w.warm_up(m, progress=lambda d, t: events.append((d, t)), jobs=2)
        w.kernels_needed = real_needed
        print(json.dumps({"events": events, "left": len(w.kernels_needed(m)), "at_dry_run": at_dry_run,
                          "helpers": [p.poll() is not None for p in started]}))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), TMPDIR=str(tmp))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    total = out["events"][0][1]
    assert out["events"][-1] == [total, total] and out["left"] == 0
    assert out["helpers"] and all(out["helpers"])  # a helper was started, and has ended
    # on an empty cache the helper starts before this process's dry run, to overlap it
    assert out["at_dry_run"] == [1]
    assert list(tmp.iterdir()) == []
    assert any(cache.rglob("*.nbi"))
    # the cache is warm now: nothing to compile, and no helper started at all
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    out = json.loads(again.stdout.strip().splitlines()[-1])
    assert out["helpers"] == [] and out["at_dry_run"] == [0] and out["left"] == 0
    assert list(tmp.iterdir()) == []


def test_command_line_warm_up_skips_the_windows_inference_kernels():
    out = _run("""
        m = make()
        cli = [str(u) for u in warmup.kernels_needed(m, window=False)]
        window = [str(u) for u in warmup.kernels_needed(m)]  # the rest, not compiled yet either
        print(json.dumps({"cli": cli, "window": window}))
    """)
    cli, extra = out["cli"], out["window"]  # window: everything, none compiled yet
    assert cli and extra  # the window needs more: serial twins for the Draw tab, saliency
    assert any("_serial" in name for name in extra) and not any("_serial" in name for name in cli
                                                                 if name.startswith("conv2d_forward"))


def test_a_model_taking_a_large_share_of_memory_gets_no_dry_run_copy():
    # The dry run's copy would sit beside the real run: above DRY_RUN_SHARE of the free
    # memory, warm-up leaves compiling to the run itself and allocates nothing.
    out = _run("""
        import os
        from visualcnn.engine.memory import estimate_memory
        m = make()
        need = estimate_memory(m.checked_report(), 64).training_peak_bytes
        os.environ["VISUALCNN_MEMORY_LIMIT"] = str(int(need / warmup.DRY_RUN_SHARE) - 1)
        events = []
        warmup.warm_up(m, progress=lambda done, total: events.append((done, total)))
        small = list(events)
        os.environ["VISUALCNN_MEMORY_LIMIT"] = str(int(need / warmup.DRY_RUN_SHARE) + 1024)
        warmup.warm_up(m, progress=lambda done, total: events.append((done, total)))
        print(json.dumps({"small": small, "large": events, "built": m.built}))
    """)
    assert out["small"] == [] and not out["built"]
    assert out["large"] and out["large"][-1][0] == out["large"][-1][1]
