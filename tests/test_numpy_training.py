"""Training in numpy (issue 24, part 3's engine): minGPT's initial weights read from the graph, AdamW and clipping
as torch computes them, targets that count only some positions, and nano-gpt's task learned from random weights."""

import math

import numpy as np
import pytest

from llmviz.core.config import PRESETS
from llmviz.core.errors import LlmvizError
from llmviz.io.tokenizer import CharTokenizer
from llmviz.training.numpy_train import AdamW, clip, decayed, random_model, sort_examples, train_step


@pytest.fixture(scope="module")
def fresh():
    return random_model(PRESETS["nano-gpt"], CharTokenizer("ABC"), seed=0)


def test_initial_weights_follow_what_reads_them(fresh):
    w, L = fresh.weights, PRESETS["nano-gpt"].n_layer
    assert set(w) == set(fresh.graph.names("weight"))  # (nano-gpt ties nothing)
    assert all(w[n].dtype == np.float32 and w[n].shape == tuple(fresh.graph[n].shape(fresh.graph.sizes(1))) for n in w)
    assert np.all(w["blocks.0.ln1.w"] == 1) and np.all(w["ln_final.w"] == 1)  # the norms' gains
    assert np.all(w["blocks.0.ln1.b"] == 0) and np.all(w["blocks.1.attn.b_Q"] == 0) and np.all(w["blocks.2.mlp.b_out"] == 0)
    assert np.std(w["blocks.0.mlp.W_in"]) == pytest.approx(0.02, rel=0.05)
    assert np.std(w["blocks.0.mlp.W_out"]) == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.05)  # into the stream
    assert np.std(w["blocks.1.attn.W_O"]) == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.1)
    assert "embed.W_E" not in decayed(fresh.graph) and "blocks.0.ln1.w" not in decayed(fresh.graph)
    assert "blocks.0.attn.W_Q" in decayed(fresh.graph) and "blocks.0.attn.b_Q" not in decayed(fresh.graph)


def test_targets_can_score_the_last_position_and_skip_others(fresh):
    ids = [2, 1, 0, 1, 1, 2, 0, 1, 1]
    probs = fresh.run(ids)["probs"].astype(np.float64)
    targets = [-1, -1, 0, 1, -1, 2, 1, 1, 2]  # T of them: the last position scored too; -1 not counted
    counted = [i for i, t in enumerate(targets) if t >= 0]
    g = fresh.gradients(ids, targets)
    assert g.loss == pytest.approx(-np.mean([math.log(probs[i, targets[i]]) for i in counted]), rel=1e-6)
    assert not g["logits"][[0, 1, 4]].any()  # the positions not counted: no gradient at their logits
    with pytest.raises(LlmvizError, match="every position is -1"):
        fresh.gradients(ids, [-1] * 9)
    with pytest.raises(LlmvizError, match="not a token id"):
        fresh.gradients(ids, [-2] * 9)


def test_adamw_and_clipping_equal_torchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    weights = {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
    params = {n: torch.nn.Parameter(torch.tensor(w.copy())) for n, w in weights.items()}
    ref = torch.optim.AdamW([{"params": [params["W"]], "weight_decay": 0.1}, {"params": [params["b"]], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95))
    opt = AdamW(weights, lr=1e-2, decays={"W"})
    for _ in range(4):
        grads = {n: (3 * rng.normal(size=w.shape)).astype(np.float32) for n, w in weights.items()}
        for n, p in params.items():
            p.grad = torch.tensor(grads[n].copy())
        before = torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        assert clip(grads, 1.0) == pytest.approx(float(before), rel=1e-5)
        for n, p in params.items():
            np.testing.assert_allclose(grads[n], p.grad.numpy(), rtol=1e-6)
        ref.step()
        opt.step(weights, grads)
        for n, p in params.items():
            np.testing.assert_allclose(weights[n], p.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_nano_gpts_task_is_learned_from_random_weights():
    model = random_model(PRESETS["nano-gpt"], CharTokenizer("ABC"), seed=0)
    opt = AdamW(model.weights, lr=5e-4, decays=decayed(model.graph))
    rng = np.random.default_rng(0)
    losses = [train_step(model, sort_examples(16, rng), opt) for _ in range(40)]
    assert losses[0] == pytest.approx(math.log(3), abs=0.05)  # three letters, no idea yet which: ln 3
    assert np.mean(losses[-5:]) < 0.6 * losses[0]  # (1.10 -> about 0.44 in 40 steps of 16)
