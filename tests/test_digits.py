"""digits-mlp (issue 25, step 2): scikit-learn's 8 × 8 digits bundled unchanged, an MLP whose forward pass and gradients
equal a plain numpy computation written here, an image input that refuses anything else by name, the bundled
weights' held-out accuracy (images 1,437 on, never trained on) as its card states it, and a short numpy training run
from random weights that learns."""

import dataclasses
import re
from importlib import resources

import numpy as np
import pytest

from llmviz import Graph, ModelConfig
from llmviz.core.errors import LlmvizError
from llmviz.core.model import Model
from llmviz.data import N_DIGITS, TEST, TRAIN, digits
from llmviz.io.loading import load_weights_file
from llmviz.training.digits import SETTINGS, accuracy, config, digits_mlp, misclassified, predictions
from llmviz.training.numpy_train import Trainer, initial_weights

WEIGHTS = resources.files("llmviz") / "weights" / "digits-mlp.safetensors"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_weights_file(str(WEIGHTS))


@pytest.fixture(scope="module")
def data():
    return digits()


def reference(w: dict, image: np.ndarray) -> dict[str, np.ndarray]:
    """The forward pass written out in float64: two ReLU layers, the logits, the softmax."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    x = image.astype(np.float64).reshape(-1)
    pre0 = x @ w["blocks.0.mlp.W_in"] + w["blocks.0.mlp.b_in"]
    h0 = np.maximum(pre0, 0)
    pre1 = h0 @ w["blocks.1.mlp.W_in"] + w["blocks.1.mlp.b_in"]
    h1 = np.maximum(pre1, 0)
    logits = h1 @ w["unembed.W_U"] + w["unembed.b_U"]
    e = np.exp(logits - logits.max())
    return {"blocks.0.mlp.hook_pre": pre0, "blocks.0.mlp.hook_post": h0, "blocks.1.mlp.hook_pre": pre1,
            "blocks.1.mlp.hook_post": h1, "logits": logits, "probs": e / e.sum()}


def reference_loss(w: dict, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([-np.log(reference(w, im)["probs"][y]) for im, y in zip(images, labels, strict=True)]))


# ---- The data ----

def test_the_bundled_digits_are_scikit_learns():
    from sklearn.datasets import load_digits  # (a test dependency: the digits' source)

    ours, labels = digits()
    theirs = load_digits()
    assert ours.shape == (N_DIGITS, 8, 8) and ours.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(ours, theirs.images)
    np.testing.assert_array_equal(labels, theirs.target)


def test_the_split_trains_on_the_first_1437_and_holds_out_the_rest(data):
    images, labels = data
    assert len(images[TRAIN]) == 1437 and len(images[TEST]) == 360 and TRAIN.stop == TEST.start == 1437
    assert images.min() == 0 and images.max() == 16 and set(labels.tolist()) == set(range(10))
    assert (resources.files("llmviz") / "data" / "README.md").read_text().count("BSD") >= 1


# ---- The graph and the forward pass ----

def test_the_graph_is_pixels_two_hidden_layers_and_ten_classes(model):
    g = model.graph
    assert g["pixels"].kind == "input" and g["pixels"].axes == ("pixel",)
    assert [g[n].op for n in ("blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "logits", "probs")] == \
        ["linear", "relu", "linear", "softmax"]
    sizes = g.sizes(1)
    assert [sizes[a] for a in ("pixel", "unit1", "unit2", "class")] == [64, 32, 16, 10]
    assert model.config.n_params == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10 == 2778
    assert model.config.n_params == sum(model.config.param_parts().values())
    axes = g.axes_json()
    assert set(axes) == {"pixel", "unit1", "unit2", "class"}
    assert axes["class"]["named_by"] == "vocabulary" and axes["pixel"]["color"].startswith("#")
    assert len({a["color"] for a in axes.values()}) == 4


def test_the_forward_pass_equals_a_plain_numpy_mlp(model, data):
    images, _ = data
    for i in (0, 5, 1437, 1796):
        trace, want = model.run(images[i]), reference(model.require_weights(), images[i])
        np.testing.assert_array_equal(trace["pixels"], images[i].reshape(-1))
        for name, a in want.items():
            np.testing.assert_allclose(trace[name], a, rtol=1e-5, atol=1e-5, err_msg=name)
        assert trace["probs"].shape == (10,) and abs(float(trace["probs"].sum()) - 1) < 1e-6
        assert trace.predicted_ids == [int(want["probs"].argmax())] and trace.predicted == [str(want["probs"].argmax())]
        np.testing.assert_array_equal(trace.next_probs, trace["probs"])
        assert trace.index_name("class", 7) == "7"


def test_a_batch_computes_what_each_image_computes_alone(model, data):
    images, _ = data
    logits = model.batch_logits(images[:20])
    assert logits.shape == (20, 10)
    for i in range(20):
        np.testing.assert_allclose(logits[i], model.run(images[i])["logits"], rtol=1e-5, atol=1e-5)
    assert model.batch_logits([images[3].tolist(), images[4]]).shape == (2, 10)  # lists of rows too


def test_an_image_of_integers_or_lists_reads_the_same(model, data):
    image = data[0][10]
    a = model.run(image)["probs"]
    np.testing.assert_array_equal(model.run(image.astype(np.uint8))["probs"], a)
    np.testing.assert_array_equal(model.run(image.tolist())["probs"], a)
    assert model.encode(image) == image.reshape(-1).tolist()
    as_text = " ".join(f"{v:g}" for v in image.reshape(-1))  # what the page and the command line send
    trace = model.run(as_text)
    np.testing.assert_array_equal(trace["probs"], a)
    np.testing.assert_array_equal(model.run(as_text.replace(" ", ", "))["probs"], a)
    np.testing.assert_array_equal(model.run(trace.tokens)["probs"], a)  # a trace's pixels, row by row, run again
    assert trace.token_strs[:3] == [f"{v:g}" for v in image.reshape(-1)[:3]] and model.decode(trace.tokens) == as_text


@pytest.mark.parametrize("bad, says", [
    ("3", r"digits-mlp reads an image: give an 8 × 8 array of numbers from 0 \(blank\) to 16 \(ink\), or as text its "
          r"64 numbers row by row \(got 1\)"),
    ("seven", "digits-mlp reads an image, not text: give an 8 × 8 array"),
    ("1 " * 65, r"or as text its 64 numbers row by row \(got 65\)"),
    ("17 " * 64, "pixel value 17 is out of range"),
    (np.zeros((7, 8)), r"digits-mlp reads an 8 × 8 image, not an array of shape \[7, 8\]"),
    (np.zeros(65), r"not an array of shape \[65\]"),
    (np.zeros((8, 8, 1)), r"not an array of shape \[8, 8, 1\]"),
    (np.zeros((1, 8, 8)), r"not an array of shape \[1, 8, 8\]"),
    ([[0] * 8] * 7 + [[0] * 7], "digits-mlp reads an image: give an 8 × 8 array"),
    (np.full((8, 8), 17.0), "pixel value 17 is out of range: give an 8 × 8 array of numbers from 0 \\(blank\\) to 16"),
    (np.full((8, 8), -1.0), "pixel value -1 is out of range"),
    (np.where(np.eye(8) > 0, np.nan, 0), "pixel value nan is out of range"),
    ([["a"] * 8] * 8, "digits-mlp reads an image: give"),
])
def test_anything_but_an_8x8_image_of_0_to_16_is_refused_by_name(model, bad, says):
    with pytest.raises(LlmvizError, match=says):
        model.run(bad)
    with pytest.raises(LlmvizError, match=says):
        model.encode(bad)


def test_a_bad_batch_or_label_is_refused_by_name(model, data):
    images, _ = data
    with pytest.raises(LlmvizError, match="pixel value 20 is out of range"):
        model.batch_logits([images[0], np.full((8, 8), 20.0)])
    with pytest.raises(LlmvizError, match="a batch's pixels must be numbers from 0 to 16"):
        model.batch_logits(np.full((2, 8, 8), 20.0, np.float32))
    with pytest.raises(LlmvizError, match="a batch is a list of 8 × 8 images, and this one is empty"):
        model.batch_logits([])
    with pytest.raises(LlmvizError, match="targets: 10 is not a class: give whole numbers from 0 to 9"):
        model.batch_gradients(images[:2], [[1], [10]])
    with pytest.raises(LlmvizError, match=r"targets: 1\.5 is not a class"):
        model.gradients(images[0], [1.5])
    with pytest.raises(LlmvizError, match="targets: give one class per image"):
        model.gradients(images[0], None)


def test_an_image_model_generates_nothing(model, data):
    with pytest.raises(LlmvizError, match="digits-mlp classifies an image: it reads no text and writes no next token"):
        model.generate(data[0][0])


def test_token_models_still_read_text(nano):
    trace = nano.run("CBABBC")
    assert trace.predicted_ids == nano.run([2, 1, 0, 1, 1, 2]).predicted_ids and trace["probs"].shape == (6, 3)
    assert nano.config.image_side == 0 and "pixel" not in nano.graph.axes_json()


# ---- Gradients ----

def test_gradients_equal_central_differences_of_the_plain_loss(model, data):
    images, labels = data
    w = {k: v.copy() for k, v in model.require_weights().items()}
    pick = [0, 100, 1437, 1500, 1700]
    g = model.batch_gradients(images[pick], [[int(labels[i])] for i in pick])
    assert g.loss == pytest.approx(reference_loss(w, images[pick], labels[pick]), rel=1e-5)
    rng, eps = np.random.default_rng(0), 1e-3
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    for name in w:
        for _ in range(4):
            at = tuple(int(rng.integers(s)) for s in w[name].shape)
            up, down = {k: v.copy() for k, v in w64.items()}, {k: v.copy() for k, v in w64.items()}
            up[name][at] += eps
            down[name][at] -= eps
            numeric = (reference_loss(up, images[pick], labels[pick]) - reference_loss(down, images[pick], labels[pick])) / (2 * eps)
            assert g.weights[name][at] == pytest.approx(numeric, abs=2e-4, rel=2e-3), (name, at)


def test_one_images_gradient_is_a_batch_of_one(model, data):
    images, labels = data
    one = model.gradients(images[1500], [int(labels[1500])])
    batch = model.batch_gradients(images[1500:1501], [int(labels[1500])])
    assert one.loss == pytest.approx(batch.loss, rel=1e-6)
    for name, gw in batch.weights.items():
        np.testing.assert_allclose(one.weights[name], gw, rtol=1e-5, atol=1e-7)
    assert one["blocks.0.mlp.hook_post"].shape == (32,)


# ---- The bundled weights and training ----

def test_the_bundled_weights_score_at_least_93_percent_on_the_held_out_digits(model, data):
    images, labels = data
    said = predictions(model, images[TEST])
    by_hand = float(np.mean([model.run(im).predicted_ids[0] == y for im, y in zip(images[TEST], labels[TEST], strict=True)]))
    assert accuracy(model) == by_hand == float((said == labels[TEST]).mean()) >= 0.93
    card = (resources.files("llmviz") / "weights" / "digits-mlp.safetensors.md").read_text()
    assert f"**{by_hand:.1%}**" in card and "images 0 … 1,436 only" in card
    wrong = misclassified(model)
    assert len(wrong) == round((1 - by_hand) * 360) == int(re.search(r"\((\d+) wrong\)", card).group(1))
    assert all(w["index"] >= 1437 and w["label"] == labels[w["index"]] != w["predicted"] for w in wrong)
    assert model.config == config()


def test_training_draws_only_training_images(data):
    images, labels = data
    task = digits_mlp()
    train = {im.tobytes(): y for im, y in zip(images[TRAIN], labels[TRAIN], strict=True)}
    for x, (y,) in task.examples(200, np.random.default_rng(1)):
        # noise is added: the nearest training image is the one drawn, with its label
        dist = ((images[TRAIN] - x) ** 2).sum((1, 2))
        assert labels[TRAIN][dist.argmin()] == y and x.min() >= 0 and x.max() <= 16
    assert len(train) > 1000


def test_a_short_run_from_random_weights_learns_the_digits():
    task = digits_mlp()
    task = dataclasses.replace(task, settings=dataclasses.replace(SETTINGS, steps=300, warmup=20))
    trainer = Trainer(task, seed=0)
    before = accuracy(trainer.model)
    losses = [trainer.step() for _ in range(300)]
    after = accuracy(trainer.model)
    assert before < 0.3 and after >= 0.85
    assert np.mean(losses[:20]) > 2.0 > 0.5 > np.mean(losses[-50:])


def test_an_mlp_config_needs_its_image_and_two_layers():
    with pytest.raises(LlmvizError, match=r"an image classifier \(arch 'mlp'\) has image_side >= 1 and n_layer 2"):
        Graph(dataclasses.replace(config(), image_side=0))
    with pytest.raises(ValueError, match="image_side must be a whole number >= 0"):
        ModelConfig("m", 2, 1, 4, 10, 1, arch="mlp", image_side=-1)
    small = ModelConfig("m", 2, 1, 4, 3, 1, arch="mlp", image_side=2, n_inner=5, activation="relu")
    m = Model(small, initial_weights(Graph(small)), None)
    assert m.run([[0, 1], [2, 16]])["probs"].shape == (3,)


def test_the_server_lists_the_held_out_mistakes_and_refuses_a_model_without_digits(model, data):
    from conftest import local_client
    from llmviz.serve.schemas import Mistakes
    from llmviz.serve.server import create_app

    images, labels = data
    client = local_client(create_app([model]))
    r = client.get("/api/models/digits-mlp/mistakes")
    assert r.status_code == 200
    got = Mistakes.model_validate(r.json())
    assert got.tested == 360 and got.accuracy == accuracy(model)
    assert [(m.index, m.label, m.predicted) for m in got.mistakes] == [
        (w["index"], w["label"], w["predicted"]) for w in misclassified(model)]
    first = got.mistakes[0]
    trace = model.run(first.text)
    np.testing.assert_array_equal(trace["pixels"], images[first.index].reshape(-1))
    assert trace.predicted_ids == [first.predicted] != [labels[first.index]]
    assert first.prob == pytest.approx(float(trace["probs"][first.predicted]), rel=1e-5)
    lens = client.post("/api/lens", json={"model": "digits-mlp", "text": first.text})  # no stream across layers: said
    assert lens.status_code == 422 and "digits-mlp has no residual stream" in lens.json()["detail"]
    nano = local_client(create_app()).get("/api/models/nano-gpt/mistakes")
    assert nano.status_code == 422
    assert nano.json()["detail"] == "nano-gpt does not read 8 × 8 digits: it has no held-out digits to get wrong"
