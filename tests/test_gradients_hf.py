"""The backward pass is autograd's: on tiny random transformers models of each architecture (GPT-2 tied and untied,
Llama with grouped-query attention tied and untied, Qwen2, Gemma, GPT-NeoX, Phi), `model.gradients` gives the loss
`labels=input_ids` gives, every weight's gradient (HF's gradients put through the architecture's own loader, as
its weights are) and the gradients of the residual stream, the attention patterns and the logits, each within
1e-4 of the tensor's largest magnitude; custom targets give the loss and gradients of those labels."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llmviz  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core import arch  # noqa: E402
from llmviz.core.model import tie  # noqa: E402
from test_modern import save as save_modern  # noqa: E402
from test_neox_phi import save as save_neox  # noqa: E402

REL = 1e-4  # max |ours − autograd| ≤ REL × max |autograd|, per tensor (the tolerance)
LOSS_REL = 1e-5

GPT2 = dict(vocab_size=61, n_positions=16, attn_implementation="eager")
GPT2_CASES = {  # GPT2Config has no switch for biases: every GPT-2 here has them
    "gpt2-tied-gelu-new": dict(n_layer=2, n_head=4, n_embd=32),
    "gpt2-untied-erf-gelu": dict(n_layer=3, n_head=3, n_embd=24, n_inner=40, activation_function="gelu",
                                 tie_word_embeddings=False, layer_norm_epsilon=1e-6),
    "gpt2-untied-relu-inverse-layer-scale": dict(n_layer=2, n_head=2, n_embd=16, activation_function="relu",
                                                 tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True),
}
HF_CASES = {  # name: (how it is built, its case there, extra config)
    "llama-gqa-untied": (save_modern, "llama-gqa3", {}),
    "llama-gqa-tied": (save_modern, "llama-gqa3", dict(tie_word_embeddings=True)),
    "qwen2-tied-headdim": (save_modern, "qwen2-headdim", {}),
    "gemma-mqa-tied": (save_modern, "gemma-geglu", {}),
    "neox-quarter-sequential": (save_neox, "neox-quarter-sequential", {}),
    "neox-whole-parallel-tied": (save_neox, "neox-whole-parallel", {}),
    "phi-half-gqa": (save_neox, "phi-half-gqa", {}),
}
CASES = [*GPT2_CASES, *HF_CASES]
FINAL_NORM = ("transformer.ln_f", "model.norm", "model.final_layernorm", "gpt_neox.final_layer_norm")


@pytest.fixture(scope="module", params=CASES)
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param in GPT2_CASES:
        net = random_net("GPT2Config", "GPT2LMHeadModel", {**GPT2, **GPT2_CASES[request.param]})
        net.save_pretrained(folder)
    else:
        save, case, extra = HF_CASES[request.param]
        net = save(folder, case, **extra)
    net.eval()
    return request.param, net, llmviz.load_model(str(folder))


def ids_for(model, n=13, seed=1) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).integers(0, model.config.vocab_size, n)]


def final_norm(net):
    for path in FINAL_NORM:
        try:
            return net.get_submodule(path)
        except AttributeError:
            continue
    raise AssertionError(f"no final norm among {FINAL_NORM}")


def autograd(net, model, ids: list[int], labels: list[int]) -> dict:
    """transformers' loss for these labels (aligned with the input, shifted inside), its own mean cross-entropy over
    positions 0 … T−2 as a check, and the gradients by llmviz's names: each weight's (through the architecture's
    loader, as the weights are), the residual stream into each layer (hidden_states[i]), the last layer's output
    (the final norm's input), the final norm's output (hidden_states[-1]), each attention pattern and the logits."""
    net.zero_grad(set_to_none=True)
    seen = {}
    handle = final_norm(net).register_forward_pre_hook(lambda _m, args: seen.update(x=args[0]))
    try:
        out = net(torch.tensor([ids]), labels=torch.tensor([labels]), output_hidden_states=True,
                  output_attentions=True)
    finally:
        handle.remove()
    kept = [*out.hidden_states, *out.attentions, out.logits, seen["x"]]
    for t in kept:
        t.retain_grad()
    out.loss.backward()

    target = torch.tensor(labels[1:])
    keep = target != -100
    own = torch.nn.functional.cross_entropy(out.logits[0, :-1][keep].double(), target[keep]).item()

    L, cfg = model.config.n_layer, model.config
    acts = {f"blocks.{i}.hook_resid_pre": out.hidden_states[i].grad[0] for i in range(L)}
    acts[f"blocks.{L - 1}.hook_resid_post"] = seen["x"].grad[0]
    acts["ln_final.hook_out"] = out.hidden_states[L].grad[0]
    acts["logits"] = out.logits.grad[0]
    patterns = {f"blocks.{i}.attn.hook_pattern": out.attentions[i].grad[0] for i in range(L)}

    module = arch.architecture(cfg.arch)
    state = {module.canonical(k): p.grad.detach().numpy() for k, p in net.named_parameters()}
    weights = module.weights_from_state(state, cfg, source="gradients")
    if cfg.rms_offset:  # Gemma: the loader adds 1 to each RMSNorm gain; a gradient has no such offset
        weights = {k: v - np.float32(cfg.rms_offset) if re.search(r"(^|\.)(ln1|ln2|ln_final)\.w$", k) else v
                   for k, v in weights.items()}
    for name in model.graph.names("weight"):  # a tied weight's gradient is its parameter's, the sum over its uses
        if "tied_to" in model.graph[name].attrs:
            weights[name] = tie(model.graph, name, weights[model.graph[name].attrs["tied_to"]])
    return {"loss": out.loss.item(), "own_loss": own, "weights": weights,
            "acts": {k: v.detach().numpy() for k, v in acts.items()},
            "patterns": {k: v.detach().numpy() for k, v in patterns.items()}}


def zero_in_exact_arithmetic(name: str, model) -> str | None:
    """Without rotary positions a key bias adds q · b_K to every score of a query, which the softmax ignores: its
    gradient is exactly 0, and both passes give float32 rounding noise (about 1e-8) that no relative tolerance of
    itself can compare. It is held to REL × the largest magnitude of its layer's W_K gradient instead (named here)."""
    if model.config.rope_theta is None and name.endswith(".attn.b_K"):
        return name[: -len("b_K")] + "W_K"
    return None


def mismatches(ours: Mapping, ref: Mapping, mask: np.ndarray | None = None, model=None) -> list[str]:
    """Each tensor of `ref` whose counterpart in `ours` is off by more than REL × its largest magnitude (or misshapen),
    with its max |difference| and max |autograd|."""
    bad = []
    for name, b in ref.items():
        a = np.asarray(ours[name], dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            bad.append(f"{name}: shape {list(a.shape)}, autograd's {list(b.shape)}")
            continue
        if mask is not None:
            a, b = a[..., mask], b[..., mask]
        if model is not None and (scale_of := zero_in_exact_arithmetic(name, model)):
            scale, worst = float(np.abs(ref[scale_of]).max()), max(float(np.abs(a).max()), float(np.abs(b).max()))
            if not worst <= REL * scale:
                bad.append(f"{name}: exactly 0, yet max |ours|, |autograd| {worst:.3g} > {REL} × max |{scale_of}| {scale:.3g}")
            continue
        diff, big = float(np.abs(a - b).max()), float(np.abs(b).max())
        if not diff <= REL * big:
            bad.append(f"{name}: max |diff| {diff:.3g}, max |autograd| {big:.3g} (ratio {diff / max(big, 1e-30):.2g})")
    return bad


@pytest.fixture(scope="module")
def reference(pair):
    _, net, model = pair
    ids = ids_for(model)
    return ids, autograd(net, model, ids, ids)


def test_transformers_labels_are_the_mean_next_token_cross_entropy(reference):
    _, ref = reference
    assert ref["loss"] == pytest.approx(ref["own_loss"], rel=1e-6)


def test_the_loss_equals_autograds(pair, reference):
    case, _, model = pair
    ids, ref = reference
    loss = model.gradients(ids).loss
    assert isinstance(loss, float)
    assert abs(loss - ref["loss"]) <= LOSS_REL * abs(ref["loss"]), (case, loss, ref["loss"])


def test_every_weight_gradient_equals_autograds(pair, reference):
    case, _, model = pair
    ids, ref = reference
    g = model.gradients(ids)
    assert set(g.weights) == set(model.weights) == set(ref["weights"])
    for name, w in model.weights.items():
        assert g.weights[name].shape == w.shape and g.weights[name].dtype == np.float32, name
    bad = mismatches(g.weights, ref["weights"], model=model)
    assert not bad, f"{case}: {len(bad)} of {len(ref['weights'])} weight gradients differ:\n" + "\n".join(bad)


def test_residual_and_logit_gradients_equal_autograds(pair, reference):
    case, _, model = pair
    ids, ref = reference
    g, t = model.gradients(ids), model.run(ids)
    for name in ref["acts"]:
        assert g[name].shape == t[name].shape, name
    bad = mismatches(g, ref["acts"])
    assert not bad, f"{case}:\n" + "\n".join(bad)


def test_attention_pattern_gradients_equal_autograds_where_a_query_sees_its_key(pair, reference):
    """Only the causal cells: a masked cell's pattern is a constant 0 in llmviz's pass, while autograd gives it
    the gradient of the product with V (which the softmax then drops)."""
    case, _, model = pair
    ids, ref = reference
    g = model.gradients(ids)
    T = len(ids)
    bad = mismatches(g, ref["patterns"], mask=np.tril(np.ones((T, T), dtype=bool)))
    assert not bad, f"{case}:\n" + "\n".join(bad)


def test_custom_targets_give_the_loss_and_gradients_of_those_labels(pair):
    case, net, model = pair
    ids = ids_for(model, 9, seed=2)
    targets = ids_for(model, 8, seed=3)
    ref = autograd(net, model, ids, [-100, *targets])  # labels[i + 1] is what position i predicts
    assert ref["loss"] == pytest.approx(ref["own_loss"], rel=1e-6)
    g = model.gradients(ids, targets=targets)
    assert abs(g.loss - ref["loss"]) <= LOSS_REL * abs(ref["loss"]), (case, g.loss, ref["loss"])
    assert abs(g.loss - model.gradients(ids).loss) > 1e-3  # the targets, not the input shifted, were scored
    bad = mismatches(g.weights, ref["weights"], model=model) + mismatches(g, ref["acts"])
    assert not bad, f"{case}:\n" + "\n".join(bad)
