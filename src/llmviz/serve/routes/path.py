"""The learning path: its five steps in order, and which of their models this server has (views/learning_steps.py)."""

from __future__ import annotations

from fastapi import APIRouter

from ...views.learning_steps import learning_path_steps
from ..dependencies import ServedDep
from ..schemas import LearningPath

router = APIRouter()


@router.get("/api/learning-path", response_model=LearningPath)
def learning_path(s: ServedDep):
    """The learning path from a single neuron to nano-gpt: each step's model, title, what it teaches and its picture,
    whether this server has the model, and where its walkthrough starts and ends (the page opens it there)."""
    return LearningPath.model_validate({"steps": learning_path_steps(s.registry)})
