"""How far a long computation has got, for the page's progress box: the page names a request's computation with an
`X-Llmviz-Task` header and asks here while it waits (serve/workers.py keeps each named computation's latest report
until it ends)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...core.errors import NotFound
from ..dependencies import ServedDep
from ..schemas import TaskProgress, TasksProgress
from ..workers import Progress

router = APIRouter()
MAX_TASKS = 32  # names asked about at once


class UnknownTask(NotFound):
    pass


def reply(record: Progress) -> TaskProgress:
    done, total, what = record.latest
    return TaskProgress(done=done, total=total, what=what, waiting=record.waiting, seconds=round(record.seconds(), 3))


@router.get("/api/progress/{task}", response_model=TaskProgress,
            responses={404: {"description": "no computation of that name is waiting or running (or it has ended)"}})
def progress(task: str, s: ServedDep):
    """The latest report of the computation a request named `task` (its X-Llmviz-Task header): `done` of `total`
    units of `what` ("layer 3 of 16"), and the seconds since it was asked for."""
    record = s.workers.tasks.get(task)
    if record is None:
        raise UnknownTask(f"no computation named {task!r} is running: it has ended, or was never asked for")
    return reply(record)


@router.get("/api/progress", response_model=TasksProgress)
def progress_of(s: ServedDep, task: Annotated[list[str] | None, Query(max_length=MAX_TASKS)] = None):
    """The progress of several computations at once (?task=a&task=b), those still waiting or running: what the page
    polls while it waits (a request that is not a computation, such as a long poll, or one that has ended, is simply
    absent, so that the page's console stays free of 404s)."""
    known = {name: record for name in task or () if (record := s.workers.tasks.get(name)) is not None}
    return TasksProgress(tasks={name: reply(record) for name, record in known.items()})
