"""Training a learner can watch: one run of `Trainer` on a background thread, which a server drives and a page
follows, independent of HTTP.

    slot = TrainingSlot()
    run = slot.start(task("nano-gpt"), seed=0)       # refused while another run is live (TrainingBusy)
    run.pause(); run.step(); run.resume(); run.set_speed(20); run.stop()
    slot.model("nano-gpt@1200")                      # a snapshot, as a Model any view can show

A run keeps **snapshots** in memory: the weights (a copy) at the first step, every `every` steps, the last, and
wherever the run was paused, single-stepped, stopped or stopped by divergence, each with the loss and learning rate
of the step that led to it, the task's metrics (`Task.evaluate`) and every head's attention pattern on the task's probe
input (none for a model without attention: digits-mlp, bigram-char). Each snapshot is a Model named `<task>@<step>` (a server's later runs: `<task>.run2@<step>`, ..., so that a
name always means one set of weights).

**When a head's pattern forms.** The distance between two patterns of a head is the mean, over the probe's query
rows, of the total-variation distance between the two rows (half the sum over keys of |p − q|: 0 for the same
distribution, 1 for disjoint ones). A head's pattern has formed at the first snapshot from which every later pattern
of that head stays within FORMED (0.1) of the latest snapshot's, and has for at least a snapshot interval (`every`
steps: a pause's snapshot a step or two after another does not make a mark). It is recomputed at each snapshot, so it
is final when the run ends; a head still moving at the latest snapshot has not formed (yet).

**Divergence.** `Trainer.step` raises `TrainingDiverged` before it changes a weight: the run stops with its message,
and keeps the last good weights as its last snapshot.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.errors import LlmvizError
from ..core.model import Model
from .numpy_train import Trainer, TrainingDiverged
from .tasks import Task

FORMED = 0.1  # the mean total-variation distance within which a head's pattern counts as the latest one's
SNAPSHOTS = 100  # the default number of scheduled snapshots over a run
MAX_SNAPSHOTS = 1000  # at most this many scheduled snapshots (steps / every)
SNAPSHOT_BYTES = 512 * 1024 * 1024  # the scheduled snapshots' weights together, at most
SEP = "@"  # a snapshot's model name: "<task>@<step>"


class TrainingBusy(LlmvizError):
    """A training run is under way: one at a time per server."""

    status = 409


class NoRun(LlmvizError):
    """An action on a run that is not there, or has ended."""

    status = 409


def pattern_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per head, the mean over query rows of the total-variation distance between two patterns [..., query, key]
    (half the sum over keys of |a − b|): 0 the same rows, 1 rows with no key in common."""
    return 0.5 * np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(-1).mean(-1)


def formed_at(patterns: Sequence[np.ndarray], within: float = FORMED) -> np.ndarray:
    """For a sequence of snapshots' patterns (each [layer, head, query, key]), each head's index of the first snapshot
    from which every later pattern stays within `within` of the last one's; -1 for a head still moving at the last
    snapshot (it is within only there)."""
    if not patterns:
        return np.zeros((0, 0), int)
    n, last = len(patterns), patterns[-1]
    if n == 1:
        return np.zeros(last.shape[:2], int)
    far = np.stack([~(pattern_distance(p, last) < within) for p in patterns])  # [snapshot, layer, head]
    first = np.where(far.any(0), n - np.argmax(far[::-1], axis=0), 0)  # after the last snapshot not yet within
    return np.where(first == n - 1, -1, first)


@dataclass(frozen=True)
class Snapshot:
    """The weights at one step of a run (as a Model named `<task>@<step>`), and what was measured there."""

    step: int
    loss: float | None  # the loss of the step that led here (its batch, before its update); None at step 0
    lr: float | None  # that step's learning rate
    metrics: dict[str, float]  # (none for weights whose forward pass leaves float32's range)
    patterns: np.ndarray | None  # [layer, head, query, key]: each head's attention on the task's probe (None: as metrics)
    model: Model

    @property
    def name(self) -> str:
        return self.model.name


def snapshot_name(task_name: str, step: int) -> str:
    return f"{task_name}{SEP}{step}"


class LiveRun:
    """One training run on its own thread, with pause, resume, single step, a speed limit and stop. Every change
    bumps `version` and calls the listeners (from the training thread): a watcher waits for the version to pass the one
    it has seen."""

    def __init__(self, task: Task, seed: int | None = None, steps: int | None = None, every: int | None = None,
                 speed: float | None = None, on_change: Callable[[], None] | None = None, label: str | None = None):
        if steps is not None:  # a shorter (or longer) run: the schedule (warm-up, decay) fits its length
            task = dataclasses.replace(task, settings=dataclasses.replace(task.settings, steps=steps))
        self.task = task
        self.label = label or task.name  # its snapshots' names: "<label>@<step>"
        self.total = task.settings.steps
        self.every = every or max(1, math.ceil(self.total / SNAPSHOTS))
        if self.total / self.every > MAX_SNAPSHOTS:
            raise LlmvizError(f"a snapshot every {self.every} steps of {self.total:,} makes "
                              f"{math.ceil(self.total / self.every):,} snapshots; at most {MAX_SNAPSHOTS:,}: give a "
                              f"larger every (at least {math.ceil(self.total / MAX_SNAPSHOTS)})")
        self.trainer = Trainer(task, seed=seed)
        self.seed = seed if seed is not None else task.settings.seed
        weights = self.trainer.model.require_weights()
        size = sum(w.nbytes for w in weights.values()) * (self.total // self.every + 2)
        if size > SNAPSHOT_BYTES:
            raise LlmvizError(f"{math.ceil(self.total / self.every):,} snapshots of {task.name}'s weights would hold "
                              f"{size / 2**20:,.0f} MiB; at most {SNAPSHOT_BYTES / 2**20:,.0f} MiB: give a larger every")
        self.speed = speed  # steps per second at most (None: as fast as it goes)
        self.status = "running"  # running, paused, done, stopped, diverged, failed
        self.message: str | None = None
        self.losses: list[float] = []  # every step's loss, in order (step i + 1's at index i)
        self.snapshots: list[Snapshot] = []
        self.formed: np.ndarray = np.zeros((0, 0), int)  # each head's snapshot index (formed_at), -1: not yet
        self.version = 0
        self._on_change = on_change  # (the slot's: it tells its listeners)
        self._cond = threading.Condition()
        self._hold = False  # asked to pause: the thread pauses between steps, once the weights there are a snapshot
        self._pending = 0  # single steps asked for
        self._stopping = False
        self._next = 0.0  # (time.monotonic) when the next step may start, at a limited speed
        self._thread = threading.Thread(target=self._loop, name=f"llmviz-training-{task.name}", daemon=True)

    # The learner's controls (from any thread)

    def start(self) -> LiveRun:
        self._thread.start()
        return self

    @property
    def live(self) -> bool:
        """Whether the run may still take steps (running or paused)."""
        return self.status in ("running", "paused")

    def pause(self) -> None:
        """Pause between steps: the status becomes "paused" once the step under way has ended and the weights there
        are a snapshot."""
        with self._cond:
            self._need_live("pause")
            self._hold = True
            self._changed()

    def resume(self) -> None:
        with self._cond:
            self._need_live("resume")
            self._hold, self._pending = False, 0
            self.status = "running"
            self._changed()

    def step(self) -> None:
        """One step, then paused, with a snapshot of its weights (a running run pauses after its next step)."""
        with self._cond:
            self._need_live("step")
            self._hold = True
            self._pending += 1
            self._changed()

    def stop(self) -> None:
        with self._cond:
            self._need_live("stop")
            self._stopping = True
            self._changed()

    def set_speed(self, steps_per_second: float | None) -> None:
        if steps_per_second is not None and not (math.isfinite(steps_per_second) and steps_per_second > 0):
            raise LlmvizError(f"speed must be a number of steps per second above 0, or none for full speed "
                              f"(got {steps_per_second})")
        with self._cond:
            self.speed = steps_per_second
            self._next = 0.0
            self._changed()

    def wait_for(self, predicate: Callable[[LiveRun], bool], timeout: float | None = None) -> bool:
        """Wait until predicate(run) holds (checked at each change); False if `timeout` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Stop the run if it is live, and wait for its thread (the server is stopping)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.join(10)

    # What is there to see

    @property
    def steps_done(self) -> int:
        return len(self.losses)

    def snapshot(self, name: str) -> Snapshot | None:
        with self._cond:
            return next((s for s in self.snapshots if s.name == name), None)

    def formation(self) -> list[tuple[int, int, int | None]]:
        """Each head's (layer, head, the step its pattern formed at, or None: not yet)."""
        with self._cond:
            return [(layer, head, self.snapshots[i].step if i >= 0 else None)
                    for (layer, head), i in np.ndenumerate(self.formed)]

    def loss_points(self, most: int = 600) -> tuple[list[int], list[float]]:
        """(steps, losses): every step's loss, or with more steps than `most`, every k-th step's (k the fewest that
        fits) and the last one's. Each is the loss of that step's batch, before its update."""
        with self._cond:
            n = len(self.losses)
            k = max(1, math.ceil(n / most))
            steps = list(range(k, n + 1, k))
            if n and (not steps or steps[-1] != n):
                steps.append(n)
            return steps, [self.losses[s - 1] for s in steps]

    # The training thread

    def _need_live(self, what: str) -> None:
        if not self.live or self._stopping:
            raise NoRun(f"cannot {what}: the training run of {self.task.name} has ended ({self.status} at step "
                        f"{self.steps_done}); start a new one")

    def _changed(self) -> None:
        """(holding the lock) tell the watchers."""
        self.version += 1
        self._cond.notify_all()
        if self._on_change is not None:
            self._on_change()

    def _take(self, loss: float | None, lr: float | None) -> None:
        """A snapshot of the weights now (on the training thread, between steps)."""
        step = self.trainer.steps_done
        if self.snapshots and self.snapshots[-1].step == step:
            return
        live = self.trainer.model
        config = dataclasses.replace(live.config, name=snapshot_name(self.label, step),
                                     description=f"{self.task.name} after {step:,} training steps from random weights "
                                                 f"(seed {self.seed}), trained in this server")
        model = Model(config, {k: v.copy() for k, v in live.require_weights().items()
                               if not live.graph[k].attrs.get("tied_to")},
                      live.tokenizer, source=f"training run of {self.task.name}, seed {self.seed}: step {step:,} of "
                                             f"{self.total:,}")
        try:  # (weights on their way to diverge may drive a pass out of float32's range: then nothing is measured)
            metrics = {k: float(v) for k, v in self.task.evaluate(model).items()}
            heads = model.graph.patterns()  # (a model without attention, a bigram table: no pattern to watch)
            trace = model.run(self.task.probe, keep=heads) if heads else None
            patterns: np.ndarray | None = np.stack([trace[n] for n in heads]) if trace is not None else None
        except LlmvizError:
            metrics, patterns = {}, None
        snap = Snapshot(step, loss, lr, metrics, patterns, model)
        with self._cond:
            self.snapshots.append(snap)
            measured = [(i, s.patterns) for i, s in enumerate(self.snapshots) if s.patterns is not None]
            if measured:  # (a mark stands once its pattern has held for a snapshot interval: not a pause's few steps)
                at, last = formed_at([p for _, p in measured]), self.snapshots[measured[-1][0]].step
                self.formed = np.vectorize(lambda k: measured[k][0] if k >= 0 and last - self.snapshots[measured[k][0]].step
                                           >= self.every else -1, otypes=[int])(at)
            self._changed()

    def _turn(self) -> str:
        """(holding the lock) What the thread is to do now: "stop", "hold" (pause), "wait" (a limited speed's next
        step is not due), "single" (a step asked for on its own) or "step"."""
        if self._stopping:
            return "stop"
        if self._hold and not self._pending:
            return "hold"
        if self._pending:
            self._pending -= 1
            return "single"
        if self.speed and self._next > time.monotonic():
            return "wait"
        return "step"

    def _loop(self) -> None:
        loss: float | None = None
        lr: float | None = None
        try:
            self._take(None, None)
            while True:
                with self._cond:
                    turn = self._turn()
                    if turn == "wait":
                        self._cond.wait(self._next - time.monotonic())
                        continue
                    if turn == "step" and self.speed:
                        self._next = max(self._next, time.monotonic()) + 1.0 / self.speed
                if turn == "stop":
                    break
                if turn == "hold":  # paused: the weights here are a snapshot, then the thread waits
                    self._take(loss, lr)
                    with self._cond:
                        if self._hold and not self._pending and not self._stopping:
                            if self.status != "paused":
                                self.status = "paused"
                                self._changed()
                            self._cond.wait()
                    continue
                lr = self.trainer.lr()
                try:
                    loss = self.trainer.step()
                except TrainingDiverged as e:
                    with self._cond:
                        self.status = "diverged"
                        self.message = (f"{e}: they are kept as the last snapshot, "
                                        f"{snapshot_name(self.label, self.trainer.steps_done)}")
                    break
                with self._cond:
                    self.losses.append(loss)
                    self._changed()
                done = self.trainer.steps_done >= self.total
                if done or turn == "single" or self.trainer.steps_done % self.every == 0:
                    self._take(loss, lr)
                if done:
                    with self._cond:
                        self.status = "done"
                    break
            self._take(loss, lr)  # the last weights (the last good ones, after a divergence)
        except Exception as e:  # (a bug, not the learner's doing: said, and the snapshots kept)
            with self._cond:
                self.status, self.message = "failed", f"training stopped at step {self.steps_done}: {e}"
        finally:
            with self._cond:
                if self.status in ("running", "paused"):
                    self.status = "stopped"
                self._changed()


class TrainingSlot:
    """A server's one training run at a time, and its snapshots as models by name. Listeners hear of every change of
    whichever run is in the slot."""

    def __init__(self):
        self.run: LiveRun | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.version = 0  # bumps at each change of the run in the slot, and when another run takes its place
        self.started = 0  # runs started in this slot

    def start(self, task: Task, seed: int | None = None, steps: int | None = None, every: int | None = None,
              speed: float | None = None) -> LiveRun:
        """Start a run of this task; refused while the slot's run is live. It replaces a run that has ended (its
        snapshots go with it)."""
        with self._lock:
            if self.run is not None and self.run.live:
                r = self.run
                raise TrainingBusy(f"a training run of {r.task.name} is under way ({r.status}, step {r.steps_done:,} "
                                   f"of {r.total:,}): one run at a time; stop it first")
            # The first run's snapshots are nano-gpt@1200, the second's nano-gpt.run2@1200: a name is one set of weights
            label = task.name if not self.started else f"{task.name}.run{self.started + 1}"
            self.run = LiveRun(task, seed, steps, every, speed, on_change=self._changed, label=label)
            self.started += 1
            self._changed()
        return self.run.start()

    def require(self) -> LiveRun:
        if self.run is None:
            raise NoRun("no training run: start one first")
        return self.run

    def model(self, name: str) -> Model | None:
        """A snapshot of the run in the slot, by its name (`nano-gpt@1200`); None if the name is not a snapshot's."""
        run = self.run
        if run is None or SEP not in name:
            return None
        snap = run.snapshot(name)
        return snap.model if snap else None

    def known(self, name: str) -> str:
        """Why a snapshot-like name is unknown ("" if it is not snapshot-like)."""
        if SEP not in name:
            return ""
        run = self.run
        if run is None:
            return f"no snapshot {name!r}: no training run is in this server (snapshots live while the server runs)"
        steps = ", ".join(str(s.step) for s in run.snapshots[:8]) + (", …" if len(run.snapshots) > 8 else "")
        return f"no snapshot {name!r} in this server's training run of {run.task.name}: its snapshots are at steps {steps}"

    def listen(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def unlisten(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _changed(self) -> None:
        self.version += 1
        for fn in list(self._listeners):
            fn()

    def close(self) -> None:
        run = self.run
        if run is not None:
            run.close()
