"""The numpy forward pass against an independent PyTorch implementation of the same maths."""

import numpy as np
import pytest

pytest.importorskip("torch")

from llmviz import ModelConfig
from reference import numpy_model_of, random_torch_gpt, torch_model_of, torch_record


def assert_trace_matches(trace, rec, atol=1e-5):
    compared = []
    for name, ref in rec.items():
        ours = trace[name]
        assert ours.shape == ref.shape, name
        assert ours.dtype == np.float32, name
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref), err_msg=name)  # the causal mask
        finite = np.isfinite(ref)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=0, atol=atol, err_msg=name)
        compared.append(name)
    return compared


def test_nano_gpt_every_tensor_equals_torch(nano):
    net = torch_model_of(nano)
    for prompt in ["CBABBC", "A", "ABCABCCBAAB"]:
        trace = nano.run(prompt)
        compared = assert_trace_matches(trace, torch_record(net, trace.tokens))
        # Every activation of the graph was checked, and every aggregate is checked below.
        assert set(trace.model.graph.names("activation")) <= set(compared)


# The last shape is large enough (4 x 520 x 520 scores, 520 x 4001 logits) for the scores, the softmaxes and
# the logits' exp to be computed on several threads, in row blocks.
@pytest.mark.parametrize("shape", [(2, 4, 64, 50, 16), (1, 2, 40, 7, 5), (4, 6, 96, 101, 33), (1, 4, 32, 4001, 520)])
def test_random_models_every_tensor_equals_torch(shape):
    n_layer, n_head, n_embd, vocab, n_ctx = shape
    cfg = ModelConfig("t", n_layer, n_head, n_embd, vocab, n_ctx, tied_unembed=False)
    net = random_torch_gpt(cfg, seed=n_embd)
    model = numpy_model_of(net)
    tokens = list(np.random.default_rng(0).integers(0, vocab, n_ctx))
    assert_trace_matches(model.run(tokens), torch_record(net, tokens))


def test_threaded_ops_equal_one_thread_and_the_formula(monkeypatch):
    from llmviz.core.ops import OPS, rows

    x = np.random.default_rng(1).standard_normal((700, 3000)).astype(np.float32)  # over rows._PARALLEL_FROM
    m = OPS["softmax_max"](x)
    threaded = OPS["gelu"](x), OPS["softmax"](x, m, OPS["softmax_sum_exp"](x, m))
    monkeypatch.setattr(rows, "_PARALLEL_FROM", x.size + 1)
    for a, b in zip(threaded, (OPS["gelu"](x), OPS["softmax"](x, m, OPS["softmax_sum_exp"](x, m)))):
        np.testing.assert_array_equal(a, b)  # the same numbers, bit for bit
    c = np.float32(np.sqrt(2 / np.pi))
    want = np.float32(0.5) * x * (np.float32(1) + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))
    np.testing.assert_allclose(threaded[0], want, rtol=1e-6, atol=1e-6)


def test_aggregates_explain_their_tensors(nano):
    t = nano.run("CBABBC")
    x = t["blocks.1.hook_resid_mid"]
    np.testing.assert_allclose(t["blocks.1.ln2.hook_mean"], x.mean(-1), atol=1e-6)
    np.testing.assert_allclose(t["blocks.1.ln2.hook_scale"], np.sqrt(x.var(-1) + 1e-5), atol=1e-6)
    # hook_normalized is before the gain and bias, hook_out after (TransformerLens 4 meaning).
    n = t["blocks.1.ln2.hook_normalized"]
    np.testing.assert_allclose(n.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(t["blocks.1.ln2.hook_out"], n * t["blocks.1.ln2.w"] + t["blocks.1.ln2.b"], atol=1e-6)
    s, m, z = (t[f"blocks.2.attn.hook_{k}"] for k in ("attn_scores", "pattern_max", "pattern_sum_exp"))
    np.testing.assert_allclose(m, s.max(-1))
    np.testing.assert_allclose(z, np.exp(s - m[..., None]).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(t["blocks.2.attn.hook_pattern"].sum(-1), 1, atol=1e-6)
    np.testing.assert_allclose(t["probs"].sum(-1), 1, atol=1e-6)


def test_masked_scores_are_minus_infinity_and_get_zero_attention(nano):
    t = nano.run("CBABBC")
    s, p = t["blocks.0.attn.hook_attn_scores"], t["blocks.0.attn.hook_pattern"]
    future = np.triu(np.ones((6, 6), bool), 1)
    assert np.all(s[:, future] == -np.inf) and np.all(np.isfinite(s[:, ~future]))
    assert np.all(p[:, future] == 0)
