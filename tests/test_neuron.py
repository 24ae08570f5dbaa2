"""The neuron (issue 25, step 1): one neuron whose forward pass, binary cross-entropy and gradients equal torch's, a
point input that refuses anything else by name, the bundled weights' accuracy as its card states it, a learner's
weights named as a model, and the plot's numbers (the loss, its gradient and a gradient-descent step that lowers it)."""

import re
from importlib import resources

import numpy as np
import pytest

from llmviz import load_model
from llmviz.core.errors import LlmvizError
from llmviz.core.model import Model
from llmviz.training.neuron import POINTS, accuracy, neuron_task, points
from llmviz.training.numpy_train import Trainer
from llmviz.views.decision import LIMIT, decision, learner_model, weights_name

pytestmark = pytest.mark.unit
CARD = resources.files("llmviz") / "weights" / "neuron.safetensors.md"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model("neuron")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_the_forward_pass_is_a_weighted_sum_then_a_sigmoid(model):
    w, b = model.weights["W"][:, 0].astype(np.float64), float(model.weights["b"][0])
    trace = model.run("1.2 -0.5")
    z = 1.2 * w[0] - 0.5 * w[1] + b
    assert trace["point"].tolist() == pytest.approx([1.2, -0.5])
    assert float(trace["logits"][0]) == pytest.approx(z, rel=1e-6)
    assert float(trace["probs"][0]) == pytest.approx(sigmoid(z), rel=1e-6)
    assert trace.next_probs.tolist() == pytest.approx([1 - sigmoid(z), sigmoid(z)], abs=1e-7)  # [class 0, class 1]
    assert trace.predicted_ids == [int(z > 0)]


def test_the_loss_and_gradients_are_torchs_binary_cross_entropy(model):
    torch = pytest.importorskip("torch")
    xs, labels = points()
    W = torch.tensor(model.weights["W"].astype(np.float64), requires_grad=True)
    b = torch.tensor(model.weights["b"].astype(np.float64), requires_grad=True)
    z = (torch.tensor(xs.astype(np.float64)) @ W + b)[:, 0]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(labels, dtype=torch.float64))
    loss.backward()
    g = model.batch_gradients(xs, labels[:, None].tolist())
    assert g.loss == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(g.weights["W"], W.grad.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(g.weights["b"], b.grad.numpy(), rtol=1e-4, atol=1e-7)
    one = model.gradients("0.3 -1.1", targets=[1])  # one point: d loss / dz = σ(z) − 1
    z1 = float(model.run("0.3 -1.1")["logits"][0])
    assert float(one["logits"][0]) == pytest.approx(sigmoid(z1) - 1, rel=1e-5)


def test_a_point_is_its_numbers_and_nothing_else(model):
    assert model.encode([0.5, -2]) == [0.5, -2.0]
    for bad, said in [("1 2 3", "reads a point of 2 numbers (got 3)"), ("a b", "reads a point, not text"),
                      ("1 500", "input 500 is out of range"), ([1, float("nan")], "is out of range")]:
        with pytest.raises(LlmvizError, match=re.escape(said)):
            model.run(bad)
    with pytest.raises(LlmvizError, match="classifies a point: it reads no text"):
        model.generate("1 2")


def test_the_points_are_fixed_and_the_bundled_neuron_separates_them_as_its_card_says(model):
    xs, labels = points()
    assert xs.shape == (2 * POINTS, 2) and labels.tolist() == [0] * POINTS + [1] * POINTS
    acc = accuracy(model)
    assert acc >= 0.95
    assert f"**{acc:.1%}**" in CARD.read_text(encoding="utf-8")


def test_training_from_random_weights_learns_the_line():
    trainer = Trainer(neuron_task(), seed=1)
    before = accuracy(trainer.model)
    losses = [trainer.step() for _ in range(150)]
    assert accuracy(trainer.model) >= 0.95 > before - 0.5  # (a random line may already split some)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5])


def test_a_learners_weights_are_a_model_by_name(model):
    served = {"neuron": model, "other": load_model("attention-toy")}
    mine = learner_model(served, "neuron~1.5,-0.8,0.25")
    assert mine.name == "neuron~1.5,-0.8,0.25" and mine.weights["W"][:, 0].tolist() == [1.5, pytest.approx(-0.8)]
    assert float(mine.run("1 1")["logits"][0]) == pytest.approx(1.5 - 0.8 + 0.25, rel=1e-6)
    assert learner_model(served, "neuron") is None
    for name, said in [("neuron~1,2", "give neuron~ then its 2 weights and its bias"),
                       (f"neuron~1,2,{LIMIT + 1:g}", f"from −{LIMIT:g} to {LIMIT:g}"),
                       ("other~1,2,3", "only a neuron's weights can be set by name"), ("nope~1,2,3", "unknown model 'nope'")]:
        with pytest.raises(LlmvizError, match=re.escape(said)):
            learner_model(served, name)
    assert weights_name("neuron", [1.23456, -2], 0.5) == "neuron~1.235,-2,0.5"


def test_the_plot_gives_the_loss_its_gradient_and_a_step_that_lowers_it(model):
    served = {"neuron": model}
    start = learner_model(served, "neuron~-1,0.5,0")  # a line that gets most points wrong
    d = decision(start, lr=1.0)
    xs, labels = points()
    p = sigmoid(xs.astype(np.float64) @ np.array([-1, 0.5]))
    assert d["probs"] == pytest.approx(p.tolist(), rel=1e-5)
    assert d["loss"] == pytest.approx(float(-np.mean(np.where(labels == 1, np.log(p), np.log(1 - p)))), rel=1e-5)
    assert d["accuracy"] == float(((p > 0.5) == (labels == 1)).mean()) < 0.5
    grad_w = ((p - labels)[:, None] * xs).mean(0)  # the binary cross-entropy's gradient, written out
    assert d["grad"]["w"] == pytest.approx(grad_w.tolist(), rel=1e-4)
    assert d["grad"]["b"] == pytest.approx(float((p - labels).mean()), rel=1e-4)
    assert d["next"]["w"] == pytest.approx((np.array([-1, 0.5]) - grad_w).tolist(), rel=1e-4)
    after = decision(learner_model(served, d["next"]["name"]))
    assert after["loss"] < d["loss"]
    with pytest.raises(LlmvizError, match="nano-gpt is not a neuron"):
        decision(load_model("nano-gpt"))


def test_the_server_serves_a_learners_neuron_and_its_plot(model):
    from conftest import local_client
    from llmviz.serve.schemas import Decision
    from llmviz.serve.server import create_app

    client = local_client(create_app([load_model("nano-gpt"), model]))
    d = Decision.model_validate(client.get("/api/models/neuron~2,1,0/decision", params={"lr": 0.5}).json())
    assert d.model == "neuron~2,1,0" and d.lr == 0.5 and len(d.points) == 2 * POINTS
    scene = client.post("/api/scene", json={"model": d.next.name, "text": "1 1"})
    assert scene.status_code == 200
    bad = client.get("/api/models/neuron~2,x,0/decision")
    assert bad.status_code == 422 and "give neuron~ then its 2 weights" in bad.json()["detail"]
    assert client.get("/api/models/nano-gpt/decision").status_code == 422


def test_the_page_explains_every_cell_with_its_real_value(model):
    """explain.ts (the page's only copy of every explanation), run in node on the neuron's pass: z's weighted sum
    and σ(z)'s curve each recompute the trace's value."""
    from pagexplain import assert_explains_every_tensor

    assert_explains_every_tensor(model.run("-0.4 1.7"))


def test_the_training_view_trains_it_live_and_its_snapshots_draw_their_line():
    from llmviz.training.live import TrainingSlot
    from llmviz.training.tasks import task

    slot = TrainingSlot()
    run = slot.start(task("neuron"), seed=2, steps=120, every=30)
    run.join(timeout=120)
    snaps = run.snapshots
    assert [s.step for s in snaps] == [0, 30, 60, 90, 120] and snaps[0].patterns is None  # no heads to watch
    first, last = snaps[0], snaps[-1]
    assert last.metrics["accuracy"] == accuracy(last.model) >= 0.95 and last.metrics["accuracy"] > first.metrics["accuracy"]
    plot = decision(slot.model(last.name))  # a snapshot's plot: its own line
    assert plot["line"]["w"] == pytest.approx(last.model.weights["W"][:, 0].tolist()) and plot["accuracy"] >= 0.95


@pytest.mark.slow
def test_a_classifier_exports_and_the_neurons_export_holds_its_plot(tmp_path):
    """`llmviz export` of a classifier (the neuron; the digit MLP) writes its page: the panels a classifier lacks are
    stored as their refusals, and the neuron's plot of its own weights is stored for the page to draw."""

    from click.testing import CliRunner

    from llmviz.serve.cli import main
    from llmviz.serve.export import read_manifest

    r = CliRunner().invoke(main, ["export", "--model", "neuron", "--input", "1.2 0.5", "-o", str(tmp_path / "n")])
    assert r.exit_code == 0, r.output
    responses = read_manifest(tmp_path / "n")["responses"]
    assert '["GET","/api/models/neuron/decision",[],null]' in responses
    digit = load_model("digits-mlp").config.example
    r = CliRunner().invoke(main, ["export", "--model", "digits-mlp", "--input", digit, "-o", str(tmp_path / "d")])
    assert r.exit_code == 0 and "for 1 input" in r.output, r.output
