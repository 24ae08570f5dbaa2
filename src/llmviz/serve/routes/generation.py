"""Generation: a continuation sampled at once, or step by step in a session that keeps its KV cache."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...core.config import PRESETS
from ...core.graph import Graph
from ...core.model import KVCache, Model
from ...core.sampling import Draw, percent
from ..dependencies import ServedDep
from ..schemas import (
    CacheFacts,
    Candidate,
    GenerateRequest,
    GenerateResponse,
    SessionRequest,
    SessionState,
    Stage,
    Step,
    StepRequest,
)
from ..sessions import ContextFull, Session

router = APIRouter()


def step_json(m: Model, d: Draw, position: int) -> Step:
    """One draw as the page shows it: the token, its probabilities, u, and each stage's top candidates."""
    stages = [Stage(name=st["name"], kept=st["kept"],
                    top=[Candidate(id=i, token=t, prob=p, percent=percent(p))
                         for (i, p), t in zip(st["top"], m.token_strs([i for i, _ in st["top"]]))])
              for st in d.stages]
    return Step(id=d.token, token=m.token_strs([d.token])[0], prob=d.prob, chosen_prob=d.chosen_prob, u=d.u,
                stages=stages, position=position)


def cache_facts(m: Model, kv: KVCache) -> CacheFacts:
    """What a session's KV cache holds (its real bytes, and the formula that gives them), at GPT-2's and GPT-3's
    full context, and what it saves: the multiply-adds of the next step with the cache and without it."""
    n, cfg = len(kv), m.config
    step = Graph(cfg, past=n).multiply_adds(1) if n else m.graph.multiply_adds(1)
    return CacheFacts.model_validate({
        "positions": n, "bytes": kv.nbytes,
        "formula": f"2 · {cfg.n_layer} · {cfg.kv_heads} · {cfg.d_head} · {n} · 4 bytes",
        "at_scale": [{"model": k, "positions": PRESETS[k].n_ctx, "bytes": PRESETS[k].kv_cache_bytes(PRESETS[k].n_ctx)}
                     for k in ("gpt2", "gpt3")],
        "step_multiply_adds": step, "full_multiply_adds": m.graph.multiply_adds(n + 1)})


def session_state(sid: str, s: Session, steps: list[Step], message: str | None = None) -> SessionState:
    m = s.model
    new = [d.token for d in s.draws]
    return SessionState(session=sid, model=m.name, prompt_tokens=s.prompt, tokens=s.tokens,
                        token_strs=m.token_strs(s.tokens), text=m.decode(new) if new else "",
                        view_text=m.decode(s.tokens[:m.config.n_ctx]), steps=steps,
                        n_ctx=m.config.n_ctx, done=s.done, message=message, cache=cache_facts(m, s.cache))


@router.post("/api/generate", response_model=GenerateResponse)
async def generate(req: GenerateRequest, request: Request, s: ServedDep):
    """Sample a continuation token by token (temperature 0 is greedy). Stops when the client goes away."""
    m = s.model(req.model)

    def compute(stop):
        ids = s.request_ids(m, req.prompt)
        longest = min(m.config.n_ctx, len(ids) + (req.max_new_tokens if req.max_new_tokens is not None else 32))
        s.within_budget(m.graph.peak_bytes(longest, ()), f"generating up to {longest} tokens", "give fewer tokens")
        g = m.generate(ids, req.max_new_tokens, req.temperature, req.top_k, req.top_p, req.seed, stop=stop,
                       min_p=req.min_p)
        steps = [step_json(m, d, len(ids) + i) for i, d in enumerate(g.draws)]
        return GenerateResponse(prompt_tokens=g.prompt, tokens=g.tokens, token_strs=g.token_strs,
                                text=g.text, probs=g.probs, steps=steps)

    return await s.run(request, compute)


@router.post("/api/sessions", response_model=SessionState, status_code=201)
def start_session(req: SessionRequest, s: ServedDep):
    """Start generating step by step from a prompt, with sampling settings and a seed (nothing is computed
    until the first step)."""
    m = s.model(req.model)
    m.require_tokens()
    ids = s.request_ids(m, req.prompt)
    sid = s.sessions.add(Session(m, ids, req.sampling(), req.seed))
    return session_state(sid, s.sessions.get(sid), [])


@router.post("/api/sessions/{sid}/step", response_model=SessionState)
async def session_step(sid: str, req: StepRequest, request: Request, s: ServedDep):
    """Generate `count` more tokens on the session's KV cache (each step computes only the new position).
    A full context ends the steps with a message (and `done`)."""
    session = s.sessions.get(sid)

    def compute(stop):
        with session.lock:
            s.within_budget(session.model.graph.peak_bytes(len(session.tokens), ()),
                            f"a step at {len(session.tokens)} tokens", "start shorter")
            s.sessions.make_room(sid, req.count)
            steps: list[Step] = []
            message: str | None = None
            for _ in range(req.count):
                try:
                    draw = session.step(stop)
                except ContextFull as e:
                    if not steps:
                        raise
                    message = str(e)
                    break
                steps.append(step_json(session.model, draw, session.position(len(session.draws) - 1)))
            return session_state(sid, session, steps, message)

    return await s.run(request, compute)


@router.post("/api/sessions/{sid}/undo", response_model=SessionState)
def session_undo(sid: str, s: ServedDep):
    """Take back the last generated token (its cache and its draw too: stepping again draws it again)."""
    session = s.sessions.get(sid)
    with session.lock:
        session.undo()
        return session_state(sid, session, [])


@router.get("/api/sessions/{sid}", response_model=SessionState)
def session_get(sid: str, s: ServedDep):
    """The session so far, with every step's sampling stages."""
    session = s.sessions.get(sid)
    return session_state(sid, session, [step_json(session.model, d, session.position(i))
                                        for i, d in enumerate(session.draws)])


@router.delete("/api/sessions/{sid}", status_code=204)
def session_end(sid: str, s: ServedDep):
    """End a session (Reset): its KV cache is freed."""
    s.sessions.remove(sid)
