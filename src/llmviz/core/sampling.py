"""Choosing the next token from the model's logits, as a chain of steps a learner can watch:

    1. logits ÷ temperature      4. top-p: the fewest tokens whose probability adds up to p
    2. softmax                   5. min-p: tokens at least min_p × the most probable one's probability
    3. top-k: the k most likely  6. renormalise, then 7. one uniform draw u placed on the cumulative sum

Temperature 0 is greedy: the most probable token, no draw. The same seed and settings give the same tokens
wherever they are asked for (Python, the CLI, the API, the page), since all of them come here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import LlmvizError

SHOWN = 8  # candidates reported for each stage


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None

    def __post_init__(self) -> None:
        """Refuse settings that have no meaning, naming the setting and its allowed range."""
        t = self.temperature
        for ok, what in [
            (isinstance(t, (int, float)) and np.isfinite(t) and t >= 0, f"temperature must be a number >= 0 (got {t})"),
            (self.top_k is None or self.top_k >= 1, f"top_k must be 1 or more (got {self.top_k})"),
            (self.top_p is None or (np.isfinite(self.top_p) and 0 < self.top_p <= 1),
             f"top_p must be in (0, 1] (got {self.top_p})"),
            (self.min_p is None or (np.isfinite(self.min_p) and 0 < self.min_p <= 1),
             f"min_p must be in (0, 1] (got {self.min_p})"),
        ]:
            if not ok:
                raise LlmvizError(what)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Draw:
    """One choice: the token, its probability under the model and after the chain, each stage's candidates
    (id -> probability, the SHOWN most likely, with how many tokens the stage kept), and the draw u."""

    token: int
    prob: float  # the model's own probability of the token (softmax of the logits, temperature 1)
    chosen_prob: float  # its probability after the whole chain: what the draw used
    u: float | None  # the uniform draw on [0, 1); None when greedy
    stages: list[dict] = field(default_factory=list)  # [{"name", "kept", "top": [(id, prob)]}]


def percent(p: float) -> str:
    """0.99995 -> "99.99 %", 4.5e-5 -> "0.0045 %": enough digits to tell the runners-up apart."""
    v = p * 100
    if 99.99 <= v < 100:
        return f"{int(v * 100) / 100:.2f} %"
    return f"{v:.2f} %" if v >= 10 else f"{v:.2g} %"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z[np.isfinite(z)].max())
    return e / e.sum()


def tempered(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The distribution after dividing the logits by a temperature: softmax(logits / t); 0 is greedy (all on the
    most probable token). Sampling's step 1-2, and the walkthrough's temperature slider."""
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        p = np.zeros_like(z)
        p[int(np.argmax(z))] = 1.0
        return p
    with np.errstate(over="ignore", under="ignore"):  # a tiny temperature leaves only the top token
        return softmax((z - z.max()) / temperature)


def _stage(name: str, p: np.ndarray) -> dict:
    order = np.argsort(-p, kind="stable")[:SHOWN]
    return {"name": name, "kept": int(np.count_nonzero(p)), "top": [(int(i), float(p[i])) for i in order if p[i] > 0]}


def sample(logits: np.ndarray, s: Sampling, rng: np.random.Generator) -> Draw:
    """The next token from one position's logits, through the chain (see the module doc)."""
    z = np.asarray(logits, dtype=np.float64)
    if not np.isfinite(z).any() or np.isnan(z).any():
        raise LlmvizError("the model computed logits that are not finite numbers (NaN or inf)")
    raw = softmax(z)
    stages = [_stage("probabilities", raw)]
    if s.greedy:
        chosen = tempered(z, 0)
        token = int(np.argmax(chosen))
        return Draw(token, float(raw[token]), 1.0, None, stages + [_stage("greedy", chosen)])
    p = tempered(z, s.temperature)
    stages.append(_stage(f"÷ temperature {s.temperature:g}", p))
    order = np.argsort(-p, kind="stable")
    if s.top_k is not None and s.top_k < len(p):
        p = np.where(np.isin(np.arange(len(p)), order[: s.top_k]), p, 0.0)
        stages.append(_stage(f"top-k {s.top_k}", p))
    if s.top_p is not None:
        q = p / p.sum()
        ranked = np.argsort(-q, kind="stable")
        keep = int(np.searchsorted(np.cumsum(q[ranked]), s.top_p)) + 1  # the fewest with mass >= top_p
        p = np.where(np.isin(np.arange(len(p)), ranked[:keep]), p, 0.0)
        stages.append(_stage(f"top-p {s.top_p:g}", p))
    if s.min_p is not None:
        p = np.where(p >= s.min_p * p.max(), p, 0.0)
        stages.append(_stage(f"min-p {s.min_p:g}", p))
    p = p / p.sum()
    stages.append(_stage("renormalised", p))
    u = float(rng.random())
    ranked = np.argsort(-p, kind="stable")
    cumulative = np.cumsum(p[ranked])
    token = int(ranked[min(int(np.searchsorted(cumulative, u, side="right")), int(np.count_nonzero(p)) - 1)])
    return Draw(token, float(raw[token]), float(p[token]), u, stages)
