"""Training you can watch (training/live.py, serve/routes/training.py): a run on its own thread gives the losses and
weights of `Trainer` run alone, pauses, steps one at a time, stops on divergence with the last good weights, refuses a
second run, marks when each head's pattern forms; over HTTP, its snapshots are models every route takes by name."""

import base64
import dataclasses

import numpy as np
import pytest

from conftest import local_client
from llmviz.serve import schemas
from llmviz.training.live import FORMED, LiveRun, NoRun, TrainingBusy, TrainingSlot, formed_at, pattern_distance
from llmviz.training.numpy_train import Trainer
from llmviz.training.tasks import task

WAIT = 120  # seconds: a deadline for what each wait is for, not a timing


def nano(steps: int, lr: float | None = None):
    t = task("nano-gpt")
    settings = dataclasses.replace(t.settings, steps=steps, **({"lr": lr} if lr is not None else {}))
    return dataclasses.replace(t, settings=settings)


def alone(t, steps: int, seed=None) -> tuple[list[float], Trainer]:
    """`Trainer` run alone for `steps` steps: its losses, and itself (its weights those after the last step)."""
    tr = Trainer(t, seed=seed)
    return [tr.step() for _ in range(steps)], tr


def finished(run: LiveRun) -> LiveRun:
    assert run.wait_for(lambda r: not r.live, WAIT), f"the run is still {run.status}"
    run.join(WAIT)
    return run


def test_a_run_gives_the_losses_and_weights_of_the_trainer_alone():
    t = nano(6)
    run = finished(LiveRun(t, seed=5, every=3).start())
    assert (run.status, run.message, run.steps_done) == ("done", None, 6)
    losses, _ = alone(t, 6, seed=5)
    assert run.losses == losses
    assert [s.step for s in run.snapshots] == [0, 3, 6]  # the first, every 3 steps, the last
    assert [s.name for s in run.snapshots] == ["nano-gpt@0", "nano-gpt@3", "nano-gpt@6"]
    for snap in run.snapshots:
        _, ref = alone(t, snap.step, seed=5)
        weights = snap.model.require_weights()
        assert set(weights) == set(ref.model.require_weights())
        for name, w in ref.model.require_weights().items():
            np.testing.assert_array_equal(weights[name], w, err_msg=f"{name} at step {snap.step}")
        assert snap.metrics == t.evaluate(ref.model)  # accuracy on all 729 inputs, of these weights
        probe = ref.model.run(t.probe)
        np.testing.assert_array_equal(snap.patterns, np.stack([probe[n] for n in ref.model.graph.patterns()]))
        assert snap.loss == (losses[snap.step - 1] if snap.step else None)
        assert snap.lr == (t.settings.lr if snap.step else None)
    # Six steps move no head's pattern far from the first: each formed at step 0 (and held for 6 ≥ 3 steps).
    assert run.formation() == [(layer, head, 0) for layer in range(3) for head in range(3)]
    steps, shown = run.loss_points(most=4)  # downsampled: every 2nd step's loss, and the last
    assert steps == [2, 4, 6] and shown == [losses[1], losses[3], losses[5]]


def test_pause_single_steps_and_resume():
    t = nano(120)
    run = LiveRun(t, seed=1, every=50).start()
    run.pause()
    assert run.wait_for(lambda r: r.status == "paused", WAIT)  # once the step under way has ended
    assert run.snapshots[-1].step == run.steps_done  # paused: the weights there are a snapshot
    k = run.steps_done
    run.step()
    assert run.wait_for(lambda r: r.snapshots[-1].step == k + 1, WAIT)
    assert run.status == "paused"
    run.step()
    assert run.wait_for(lambda r: r.snapshots[-1].step == k + 2, WAIT)
    assert run.steps_done == k + 2 and run.status == "paused"
    losses, ref = alone(t, k + 2, seed=1)
    assert run.losses == losses
    np.testing.assert_array_equal(run.snapshots[-1].model.require_weights()["blocks.1.attn.W_Q"],
                                  ref.model.require_weights()["blocks.1.attn.W_Q"])
    with pytest.raises(ValueError, match="above 0"):
        run.set_speed(0)
    run.set_speed(1000)
    run.resume()
    assert finished(run).status == "done"
    assert run.steps_done == 120 and run.snapshots[-1].step == 120
    assert run.losses == alone(t, 120, seed=1)[0]  # pausing and stepping change nothing of the run
    with pytest.raises(NoRun, match=r"cannot pause: the training run of nano-gpt has ended \(done at step 120\)"):
        run.pause()


def test_stop_keeps_the_snapshots_and_the_weights_where_it_stopped():
    run = LiveRun(nano(100_000), seed=0).start()
    assert run.wait_for(lambda r: r.steps_done >= 2, WAIT)
    run.stop()
    finished(run)
    assert run.status == "stopped" and run.snapshots[-1].step == run.steps_done < 100_000
    _, ref = alone(nano(100_000), run.steps_done, seed=0)
    np.testing.assert_array_equal(run.snapshots[-1].model.require_weights()["embed.W_E"],
                                  ref.model.require_weights()["embed.W_E"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (numpy's, on the way to the diverging step)
def test_divergence_stops_the_run_naming_the_step_and_keeps_the_last_good_weights():
    t = nano(50, lr=1e3)  # a learning rate a million times too large
    losses = []
    ref = Trainer(t, seed=0)
    with pytest.raises(ValueError, match="diverged") as refused:
        for _ in range(50):
            losses.append(ref.step())
    good = len(losses)  # the steps before the one that diverged
    run = finished(LiveRun(t, seed=0, every=1).start())
    assert run.status == "diverged" and run.steps_done == good and run.losses == losses
    assert run.message == f"{refused.value}: they are kept as the last snapshot, nano-gpt@{good}"
    assert f"training diverged at step {good + 1}" in run.message
    last = run.snapshots[-1]
    assert last.step == good
    for name, w in ref.model.require_weights().items():  # the trainer kept its last good weights: so does the run
        np.testing.assert_array_equal(last.model.require_weights()[name], w)


def test_one_run_at_a_time_and_later_runs_have_names_of_their_own():
    slot = TrainingSlot()
    with pytest.raises(NoRun, match="no training run: start one first"):
        slot.require()
    run = slot.start(nano(100_000), seed=0)
    with pytest.raises(TrainingBusy, match=r"a training run of nano-gpt is under way \(.*of 100,000\): one run at a "
                                           r"time; stop it first"):
        slot.start(nano(10))
    assert TrainingBusy.status == 409
    assert run.wait_for(lambda r: len(r.snapshots) >= 1, WAIT)
    assert slot.model("nano-gpt@0") is run.snapshots[0].model
    run.stop()
    finished(run)
    second = finished(slot.start(nano(2), seed=0, every=1))
    assert [s.name for s in second.snapshots] == ["nano-gpt.run2@0", "nano-gpt.run2@1", "nano-gpt.run2@2"]
    assert slot.model("nano-gpt@0") is None and slot.model("nano-gpt.run2@2") is second.snapshots[-1].model
    assert "its snapshots are at steps 0, 1, 2" in slot.known("nano-gpt@7")
    slot.close()


def test_pattern_distance_and_when_each_head_forms():
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert pattern_distance(a, b) == 0.5  # the first row moved all its weight (1), the second none (0)
    assert pattern_distance(a, a) == 0.0
    uniform, first, second = np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    near = np.array([[1.0, 0.0], [0.08, 0.92]])  # within 0.1 of `second`: half of (0.08 + 0.08) over 2 rows
    assert pattern_distance(near, second) < FORMED
    # Four heads of one layer over five snapshots (a row each): head 0 settles at snapshot 2; head 1 never moves;
    # head 2 leaves its final pattern and comes back near it, so it formed after its excursion (snapshot 3); head 3
    # comes back only at the last snapshot, so it is still moving.
    heads = [[uniform, uniform, uniform, uniform],
             [first, uniform, second, second],
             [second, uniform, first, first],
             [second, uniform, near, uniform],
             [second, uniform, second, second]]
    seq = [np.stack(h)[None] for h in heads]  # each [1 layer, 4 heads, 2 queries, 2 keys]
    assert formed_at(seq).tolist() == [[2, 0, 3, -1]]
    assert formed_at(seq[:1]).tolist() == [[0, 0, 0, 0]]  # one snapshot: each pattern is the latest
    assert formed_at(seq[:3]).tolist() == [[-1, 0, -1, -1]]  # recomputed as snapshots arrive


# Over HTTP


@pytest.fixture(scope="module")
def client():
    from llmviz.serve.server import create_app

    with local_client(create_app()) as c:
        yield c


def wait_state(client, until, what: str) -> dict:
    """Long-poll GET /api/training (?since=) until `until(state)`."""
    st = client.get("/api/training").json()
    for _ in range(10_000):
        if until(st):
            return st
        st = client.get("/api/training", params={"since": st["version"], "wait": 30}).json()
    raise AssertionError(f"the training state never became {what}")


def test_bad_starts_are_refused_with_what_can_be_trained(client):
    for body, status, says in [({"model": "gpt2"}, 409, "gpt2 is structure only"),
                               ({"model": "nope"}, 404, "unknown model 'nope'"),
                               ({"model": "shakespeare-char"}, 422, "not at hand offline")]:
        r = client.post("/api/training", json=body)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert says in detail and detail.endswith("the models that can be trained here: nano-gpt, neuron, digits-mlp, bigram-char, attention-toy"), detail
    for body, says in [({"steps": 0}, "steps: Input should be greater than or equal to 1 (allowed: from 1 to 100000)"),
                       ({"steps": 100_000, "every": 1}, "makes 100,000 snapshots; at most 1,000"),
                       ({"speed": 0}, "speed: Input should be greater than 0")]:
        r = client.post("/api/training", json={"model": "nano-gpt", **body})
        assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_a_run_over_http_and_its_snapshots_as_models(client):
    r = client.post("/api/training", json={"model": "nano-gpt", "seed": 2, "steps": 6, "every": 3})
    assert r.status_code == 200, r.text
    again = client.post("/api/training", json={"model": "nano-gpt"})
    if again.status_code == 409:  # (unless the six steps were done already)
        assert "one run at a time" in again.json()["detail"]
    st = schemas.TrainingState.model_validate(wait_state(client, lambda s: s["status"] == "done", "done"))
    losses, ref = alone(nano(6), 6, seed=2)
    assert st.losses == losses and st.loss_steps == [1, 2, 3, 4, 5, 6]
    label = st.snapshots[0].name.split("@")[0]
    assert [s.name for s in st.snapshots] == [f"{label}@{k}" for k in (0, 3, 6)]
    assert st.snapshots[-1].metrics == {"accuracy": nano(6).evaluate(ref.model)["accuracy"]}
    assert st.fractions == ["accuracy"] and len(st.formation) == 9 and st.formation[5].label == "L1H2"
    assert [(x.label, x.value) for x in st.settings][:2] == [("optimiser", "AdamW"), ("learning rate", "0.0005")]
    last = st.snapshots[-1].name
    assert last not in [m["name"] for m in client.get("/api/models").json()]  # not in the list
    info = schemas.ModelInfo.model_validate(client.get(f"/api/training/snapshots/{last}").json())
    assert info.has_weights and info.example == "CBABBC" and "step 6 of 6" in info.source
    # Every route takes a snapshot by name: its numbers are the trainer's.
    assert client.post("/api/scene", json={"model": last, "text": "CBABBC"}).status_code == 200
    cells = client.post("/api/cells", json={"model": last, "text": "CBABBC",
                                            "slices": [{"tensor": "blocks.0.attn.W_K", "at": {"head": 1}}]}).json()
    got = np.frombuffer(base64.b64decode(cells["slices"][0]["values"]), "<f4").reshape(cells["slices"][0]["shape"])
    np.testing.assert_array_equal(got, ref.model.require_weights()["blocks.0.attn.W_K"][1])
    walk = client.get("/api/walkthrough", params={"model": last})
    assert walk.status_code == 200 and walk.json()["chapters"]
    assert "unknown model 'gpt5': this server has nano-gpt" in client.get("/api/training/snapshots/gpt5").json()["detail"]
    assert "not a training snapshot" in client.get("/api/training/snapshots/nano-gpt").json()["detail"]
    missing = client.get(f"/api/training/snapshots/{label}@4")
    assert missing.status_code == 404 and "its snapshots are at steps 0, 3, 6" in missing.json()["detail"]
    assert "its snapshots are at steps 0, 3, 6" in client.post("/api/scene", json={"model": f"{label}@4"}).json()["detail"]
    ended = client.post("/api/training/control", json={"action": "step"})
    assert ended.status_code == 409 and "has ended (done at step 6)" in ended.json()["detail"]


def test_control_and_long_poll_over_http(client):
    r = client.post("/api/training", json={"model": "nano-gpt", "seed": 0, "steps": 100_000, "speed": 200})
    assert r.status_code == 200, r.text
    assert r.json()["speed"] == 200
    client.post("/api/training/control", json={"action": "pause"})
    st = wait_state(client, lambda s: s["status"] == "paused", "paused")  # (after the step under way)
    assert st["snapshots"][-1]["step"] == st["steps_done"]  # paused: the weights there are a snapshot
    k = st["steps_done"]
    st = client.post("/api/training/control", json={"action": "step"}).json()
    st = wait_state(client, lambda s: s["snapshots"][-1]["step"] == k + 1, "one step further")
    assert st["status"] == "paused" and st["steps_done"] == k + 1
    # A long poll answers at once when the state has changed since, and otherwise waits (here: for nothing to
    # change while paused, so it ends at its `wait`).
    assert client.get("/api/training", params={"since": st["version"] - 1, "wait": 30}).json()["version"] == st["version"]
    assert client.get("/api/training", params={"since": st["version"], "wait": 0.05}).json()["version"] == st["version"]
    st = client.post("/api/training/control", json={"action": "speed", "speed": None}).json()
    assert st["speed"] is None
    assert client.post("/api/training/control", json={"action": "speed", "speed": 0}).status_code == 422
    assert client.post("/api/training/control", json={"action": "fly"}).status_code == 422
    busy = client.post("/api/training", json={"model": "nano-gpt"})
    assert busy.status_code == 409 and "stop it first" in busy.json()["detail"]
    client.post("/api/training/control", json={"action": "stop"})
    st = wait_state(client, lambda s: s["status"] == "stopped", "stopped")
    assert st["snapshots"][-1]["step"] == st["steps_done"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_over_http(client, monkeypatch):
    from llmviz.serve.routes import training

    monkeypatch.setattr(training, "task", lambda name: nano(50, lr=1e3))
    assert client.post("/api/training", json={"model": "nano-gpt", "seed": 0, "every": 1}).status_code == 200
    st = wait_state(client, lambda s: s["status"] not in ("running", "paused"), "ended")
    assert st["status"] == "diverged"
    assert st["message"].startswith(f"training diverged at step {st['steps_done'] + 1}")
    assert st["message"].endswith(f"kept as the last snapshot, {st['snapshots'][-1]['name']}")
    assert st["snapshots"][-1]["step"] == st["steps_done"]
