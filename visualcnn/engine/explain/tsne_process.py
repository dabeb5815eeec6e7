"""openTSNE in a process of its own, for a window that must keep drawing while a map is made.

Measured (2,000 test digits, seed CNN, a Python thread ticking every 10 ms beside it):
importing openTSNE imports scikit-learn, which holds the interpreter lock for up to 230-490 ms
at a time; the t-SNE iterations themselves stayed under ~50 ms. A window running t-SNE in a
thread would freeze for a quarter to half a second, so the window's maps run here: a child
process ("spawn": never a fork of a process running Qt threads) imports openTSNE, makes the
map, then keeps it to place new points (TSNEEmbedding.transform) until it is closed. The
parent only waits on a pipe, which releases the lock.

The same function (fit_tsne) makes the map in-process and in the child: same seed, same map.
Cancel ends the child at once (terminate); a cancelled map is never returned.
"""

from __future__ import annotations

import multiprocessing
import os

import numpy as np

POLL = 0.02  # seconds between looks at the cancel flag while the child works
NICE = 10  # the child's lower scheduling priority (POSIX); the map is not slower on an idle machine


def fit_tsne(reduced, seed: int, perplexity: float, early: int, main: int, every: int, iterations=None,
             cancelled=None):
    """openTSNE's TSNEEmbedding of the rows of reduced; None when cancelled() turned True.
    iterations(done) every `every` iterations (the main phase counting after the early one)."""
    from openTSNE import TSNE as OpenTSNE

    # perplexity must leave room for 3 * perplexity neighbours: a small map lowers it
    perplexity = float(min(perplexity, max(1.0, (len(reduced) - 1) / 3.0)))
    stopped = []

    class Callback:  # openTSNE calls it every `every` iterations of each phase; True stops
        def __init__(self):
            self.phases, self.offset, self.active = 0, 0, True

        def optimization_about_to_start(self):
            self.offset = 0 if self.phases == 0 else early
            self.phases += 1

        def __call__(self, iteration, _error, _embedding):
            if not self.active:
                return False
            if iterations is not None:
                iterations(min(self.offset + iteration, early + main))
            if cancelled is not None and cancelled():
                stopped.append(True)
                return True
            return False

    callback = Callback()
    tsne = OpenTSNE(n_components=2, perplexity=perplexity, early_exaggeration_iter=early, n_iter=main,
                    random_state=int(seed), n_jobs=1, callbacks=callback, callbacks_every_iters=every,
                    verbose=False)
    result = tsne.fit(np.ascontiguousarray(reduced, np.float64))
    callback.active = False  # the map keeps its callbacks: transform() would report (and cancel) again
    return None if stopped else result


def _serve(conn) -> None:  # the child process
    try:
        reduced, args = conn.recv()
        embedding = fit_tsne(reduced, *args, iterations=lambda done: conn.send(("progress", done)))
        conn.send(("map", np.asarray(embedding, np.float64)))
        while True:
            message = conn.recv()
            if message is None:
                return
            conn.send(("placed", np.asarray(embedding.transform(np.asarray(message, np.float64)), np.float64)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except Exception as exc:  # noqa: BLE001 - any failure goes back to the parent as one line
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        except (BrokenPipeError, OSError):
            pass


class TsneProcess:
    """A map made and kept by a child process: fit() once, then transform() as often as needed, close()."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child,), daemon=True, name="visualcnn-tsne")
        self._process.start()
        child.close()
        try:  # from its first instruction (its imports too): the waiting window gets the CPU first
            os.setpriority(os.PRIO_PROCESS, self._process.pid, os.getpriority(os.PRIO_PROCESS, 0) + NICE)
        except (AttributeError, OSError):  # not POSIX, or not allowed: the same priority as the window
            pass

    def fit(self, reduced, seed, perplexity, early, main, every, iterations=None, cancelled=None):
        """The map's (N, 2) coordinates, or None when cancelled (the child is then ended)."""
        self._conn.send((np.ascontiguousarray(reduced, np.float64), (int(seed), float(perplexity), early, main, every)))
        while True:
            kind, value = self._receive(cancelled)
            if kind is None:
                return None
            if kind == "progress":
                if iterations is not None:
                    iterations(value)
            elif kind == "map":
                return value

    def transform(self, points) -> np.ndarray:
        self._conn.send(np.ascontiguousarray(points, np.float64))
        return self._receive(None)[1]

    def _receive(self, cancelled):
        while not self._conn.poll(POLL):
            if cancelled is not None and cancelled():
                self.close()
                return None, None
            if not self._process.is_alive() and not self._conn.poll():
                raise RuntimeError("the t-SNE process ended unexpectedly; compute the map again")
        try:
            kind, value = self._conn.recv()
        except EOFError:
            raise RuntimeError("the t-SNE process ended unexpectedly; compute the map again") from None
        if kind == "error":
            raise RuntimeError(f"t-SNE failed: {value}")
        return kind, value

    def close(self) -> None:
        """End the child now (it holds nothing worth saving)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=2)
        self._conn.close()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()


__all__ = ["fit_tsne", "TsneProcess"]
