"""Training you can watch: a bundled model trained from random initial weights in this server (training/live.py),
followed by the page.

    POST /api/training            start a run ({model, seed?, steps?, every?, speed?}); 409 while one is under way
    GET  /api/training            the run: settings, status, the loss curve, the snapshots and their scores, when each
                                  head's pattern formed; ?since=<version> waits (up to ?wait= seconds) for a change
    POST /api/training/control    pause, resume, step (one step, then paused), stop, speed
    GET  /api/training/snapshots/{name}   a snapshot as a model (`nano-gpt@1200`), as /api/models lists models

A snapshot is a model every other route takes by its name (Served.model); /api/models does not list them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from fastapi import APIRouter, Query

from ...core.errors import LlmvizError, ModelNotFound, NoWeights
from ...training.live import FORMED, LiveRun, TrainingSlot
from ...training.tasks import TASKS, Task, task
from ..dependencies import ServedDep
from ..schemas import (
    HeadFormation,
    ModelInfo,
    Trainable,
    TrainingControl,
    TrainingSetting,
    TrainingSnapshot,
    TrainingStart,
    TrainingState,
    json_safe,
)
from .models import model_info

router = APIRouter()


@functools.cache
def trainable() -> tuple[Trainable, ...]:
    """The bundled models that can be trained, with their settings (the view offers the `offline` ones)."""
    out = []
    for name, make in TASKS.items():
        t = make()
        out.append(Trainable(name=name, offline=t.offline, probe=t.probe, about=t.about,
                             settings=[TrainingSetting(label=k, value=v) for k, v in t.settings.describe()]))
    return tuple(out)


def offline_names() -> str:
    return ", ".join(t.name for t in trainable() if t.offline)


def task_for(s, name: str) -> Task:
    """The task of a model this view can train, or an error that says which can."""
    if name not in TASKS:
        m = s.registry.get(name)
        if m is not None and not m.has_weights:
            raise NoWeights(f"{name} is structure only (drawn from its config alone, with no weights and no task it "
                            f"learned): there is nothing to train; the models that can be trained here: {offline_names()}")
        if m is None and s.training.model(name) is None:
            raise ModelNotFound(f"unknown model {name!r}: the models that can be trained here: {offline_names()}")
        raise LlmvizError(f"{name} cannot be trained here (the view trains a bundled model from random weights on the "
                          f"task it was made for): the models that can be trained here: {offline_names()}")
    t = task(name)
    if not t.offline:
        raise LlmvizError(f"{name}'s training text is not at hand offline (it is a download): the models that can be "
                          f"trained here: {offline_names()}")
    return t


def state_of(slot: TrainingSlot) -> TrainingState:
    version, run = slot.version, slot.run
    common = {"version": version, "trainable": list(trainable()),
              "formation_rule": "the first snapshot from which the head's attention on the probe input stays within "
                                f"a mean total-variation distance of {FORMED:g} of the latest snapshot's (per query "
                                "row: half the sum over keys of |p − q|), for at least a snapshot interval"}
    idle: dict[str, Any] = {"status": "idle", "message": None, "model": None, "seed": None, "steps": 0, "steps_done": 0, "every": 0,
            "speed": None, "settings": [], "probe": None, "loss_steps": [], "losses": [], "snapshots": [], "fractions": [],
            "formation": []}
    return TrainingState.model_validate({**common, **(run_state(run) if run else idle)})


def run_state(run: LiveRun) -> dict:
    steps, losses = run.loss_points()
    snaps = list(run.snapshots)
    patterns = run.snapshots[0].model.graph.patterns() if snaps else []
    return json_safe({
        "status": run.status, "message": run.message, "model": run.task.name, "seed": run.seed, "steps": run.total,
        "steps_done": run.steps_done, "every": run.every, "speed": run.speed,
        "settings": [{"label": k, "value": v} for k, v in run.task.settings.describe()], "probe": run.task.probe,
        "loss_steps": steps, "losses": losses,
        "snapshots": [TrainingSnapshot(step=s.step, name=s.name, loss=s.loss, lr=s.lr, metrics=s.metrics).model_dump()
                      for s in snaps],
        "fractions": sorted({k for s in snaps for k in s.metrics} & run.task.shares),
        "formation": [HeadFormation(layer=layer, head=head, label=f"L{layer}H{head}", step=step,
                                    pattern=patterns[layer]).model_dump() for layer, head, step in run.formation()],
    })


@router.post("/api/training", response_model=TrainingState)
def start_training(req: TrainingStart, s: ServedDep):
    """Train a bundled model from random initial weights, on a thread of its own; one run at a time (409 while one is
    running or paused). `steps` and `every` shorten a run and space its snapshots."""
    t = task_for(s, req.model)
    s.training.start(t, seed=req.seed, steps=req.steps, every=req.every, speed=req.speed)
    return state_of(s.training)


@router.get("/api/training", response_model=TrainingState)
async def training_state(s: ServedDep, since: int | None = Query(None, ge=0),
                         wait: float = Query(20, ge=0, le=60, description="seconds to wait for a change, at most")):
    """The run (status idle before any). With `since` (a state's version), the answer waits until the state has
    changed from it, or `wait` seconds have passed, or the server is stopping: long polling."""
    slot = s.training
    if since is not None and slot.version == since and wait > 0:
        loop, changed = asyncio.get_running_loop(), asyncio.Event()

        def tell() -> None:  # (from the training thread)
            with contextlib.suppress(RuntimeError):  # (a loop that has closed: nobody is waiting)
                loop.call_soon_threadsafe(changed.set)

        slot.listen(tell)
        try:
            if slot.version == since:
                waits = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(s.stopping.wait())]
                try:
                    await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            slot.unlisten(tell)
    return state_of(slot)


@router.post("/api/training/control", response_model=TrainingState)
def control_training(req: TrainingControl, s: ServedDep):
    """pause; resume; step (one step, then paused: a running run pauses after its next step); stop; speed (steps per
    second at most, null: full speed). A run that has ended takes none of them but speed (409)."""
    run = s.training.require()
    if req.action == "speed":
        run.set_speed(req.speed)
    else:
        getattr(run, req.action)()
    return state_of(s.training)


@router.get("/api/training/snapshots/{name}", response_model=ModelInfo)
def snapshot_info(name: str, s: ServedDep):
    """A snapshot of the run as a model, as /api/models describes each of its models."""
    m = s.training.model(name)
    if m is None:  # (Served.model says why: an unknown model, or the run's snapshots)
        raise ModelNotFound(f"{s.model(name).name} is a model of this server, not a training snapshot")
    return model_info(name, m)
