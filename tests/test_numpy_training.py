"""Training in numpy (issue 24, part 3's engine): minGPT's initial weights read from the graph, AdamW and clipping
as torch computes them, targets that count only some positions, a batch's pass equal to its examples' passes, the
tasks' scores against a plain computation, a diverging step refused, and nano-gpt's task learned from random
weights (to 729 of 729 in the slow tier), and minGPT's torch loop given the same numbers."""

import itertools
import math

import numpy as np
import pytest

from llmviz import load_model
from llmviz.core.config import PRESETS
from llmviz.core.errors import LlmvizError
from llmviz.io.tokenizer import CharTokenizer
from llmviz.training.numpy_train import (
    AdamW,
    Trainer,
    TrainingDiverged,
    clip,
    decayed,
    random_model,
    schedule,
    train_step,
)
from llmviz.training.tasks import nano_gpt, shakespeare_char, sort_accuracy, sort_examples, sorts, validation_loss


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


def test_a_batch_in_one_pass_equals_its_examples_one_by_one():
    """Model.batch_gradients: every op with a leading batch axis. Its loss and weights' gradient are the mean of the
    examples' own (Model.gradients), its logits each example's; on a model with GQA and rotary too."""
    import dataclasses
    llama = dataclasses.replace(PRESETS["smollm-135m"], name="tiny-llama", n_layer=2, n_head=4, n_kv_head=2,
                                n_embd=32, n_inner=48, vocab_size=50, n_ctx=16, head_dim=None)
    tiny_llama = random_model(llama, None, seed=4)
    for model, batch in ((load_model("nano-gpt"), sort_examples(5, np.random.default_rng(3))),
                         (tiny_llama, [(list(range(i, i + 7)), [(3 * j + i) % 50 for j in range(7)]) for i in range(4)])):
        got = model.batch_gradients([x for x, _ in batch], [t for _, t in batch])
        each = [model.gradients(x, t) for x, t in batch]
        assert got.loss == pytest.approx(np.mean([g.loss for g in each]), rel=1e-5)
        for name, gw in got.weights.items():
            mean = np.mean([g.weights[name] for g in each], axis=0)
            np.testing.assert_allclose(gw, mean, atol=1e-5 * (np.abs(mean).max() + 1e-3), err_msg=name)
        logits = model.batch_logits([x for x, _ in batch])
        np.testing.assert_allclose(logits[1], model.run(batch[1][0])["logits"], atol=1e-5)
    with pytest.raises(LlmvizError, match="same number of tokens"):
        model.batch_logits([[1, 2, 3], [1, 2]])


def test_sort_accuracy_is_greedy_generations_on_all_729_inputs():
    """The batched decoding sorts an input exactly when Model.generate does (checked on 90 of the inputs, of a
    half-trained model)."""
    trainer = Trainer(nano_gpt(), seed=1)
    for _ in range(40):
        trainer.step()
    model = trainer.model
    inputs = ["".join(p) for p in itertools.product("ABC", repeat=6)]
    got = sorts(model)
    assert 0 < got.sum() < 729 and sort_accuracy(model) == got.sum() / 729  # (neither none nor all: it means something)
    for i in np.random.default_rng(0).choice(729, 90, replace=False):
        assert got[i] == (model.generate(inputs[i], 6).text == "".join(sorted(inputs[i]))), inputs[i]


def test_validation_loss_is_the_mean_next_character_loss():
    rng = np.random.default_rng(0)
    task = shakespeare_char(text="To be, or not to be, that is the question.\n" * 30, n_ctx=16)
    model = random_model(task.config, task.tokenizer, seed=2)
    val = np.array(task.tokenizer.encode("Whether 'tis nobler in the mind to suffer.\n" * 3))
    got = validation_loss(model, val, n=4, batch=3)
    starts = np.linspace(0, len(val) - 16 - 2, 4).astype(int)
    want = np.mean([model.gradients(val[s:s + 16].tolist(), val[s + 1:s + 17].tolist()).loss for s in starts])
    assert got == pytest.approx(want, rel=1e-5)
    assert len(task.examples(3, rng)) == 3 and task.offline


def test_a_diverging_step_stops_before_changing_any_weight():
    trainer = Trainer(nano_gpt(), seed=0)
    trainer.step()
    trainer.model.weights["unembed.W_U"][0, 0] = np.nan  # the loss cannot be a number
    before = {n: w.copy() for n, w in trainer.model.weights.items()}
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2: the loss is nan; the weights are those of step 1"):
        trainer.step()
    trainer.model.weights["unembed.W_U"][0, 0] = 0
    trainer.model.weights["blocks.1.mlp.W_in"][0, 0] = np.inf  # the forward pass leaves float32's range
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 2: computing blocks.1.mlp.hook_post went out"):
        trainer.step()
    before["blocks.1.mlp.W_in"][0, 0], before["unembed.W_U"][0, 0] = np.inf, 0
    for n, w in trainer.model.weights.items():
        np.testing.assert_array_equal(w, before[n])


def test_the_schedule_warms_up_then_follows_a_cosine():
    assert schedule(0, 100, 1e-3, 10, None) == 1e-3
    assert schedule(0, 100, 1e-3, 10, 1e-4) == pytest.approx(1e-4) and schedule(9, 100, 1e-3, 10, 1e-4) == pytest.approx(1e-3)
    assert schedule(99, 100, 1e-3, 10, 1e-4) == pytest.approx(1e-4)
    assert schedule(10 + 89 // 2, 100, 1e-3, 10, 1e-4) == pytest.approx(5.5e-4, rel=0.02)


def test_nano_gpt_learns_to_sort_every_input_from_random_weights():
    """The numpy trainer alone (no torch): 729 of 729 inputs sorted after 800 steps of batch 64 (about 10 s here;
    the default run is 3000 steps)."""
    trainer = Trainer(nano_gpt(), seed=3407)
    losses = [trainer.step() for _ in range(800)]
    assert losses[0] == pytest.approx(math.log(3), abs=0.05)
    assert sort_accuracy(trainer.model) == 1.0


def test_the_numpy_trainer_takes_the_same_step_as_minGPTs_torch_loop():
    """One step from the same weights and batch: the weights after it equal torch's (its autograd and AdamW)."""
    torch = pytest.importorskip("torch")
    from reference import torch_model_of
    from torch_gpt import adamw

    trainer = Trainer(nano_gpt(), seed=5)
    net = torch_model_of(trainer.model)
    net.train()
    batch = sort_examples(8, np.random.default_rng(9))
    x, y = torch.tensor([b for b, _ in batch]), torch.tensor([t for _, t in batch])
    opt = adamw(net, 5e-4)
    _, loss = net(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    got = train_step(trainer.model, batch, trainer.opt)
    assert got == pytest.approx(loss.item(), rel=1e-5)
    from reference import numpy_model_of
    after = numpy_model_of(net)
    for n, w in trainer.model.weights.items():
        np.testing.assert_allclose(w, after.weights[n], atol=2e-6, err_msg=n)
