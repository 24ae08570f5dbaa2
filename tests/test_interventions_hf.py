"""Interventions are faithful: the same edit made by a torch hook on a tiny random transformers model gives the
same logits and probabilities as llmviz's edited pass, within 1e-5. Zeroing one head's hook_z (the head's slice
of the attention output projection's input) and patching one position of a block's output from a second input."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llmviz  # noqa: E402
from test_modern import save as save_modern  # noqa: E402

ATOL = 1e-5


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2-edits")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=16, vocab_size=50,
                                  attn_implementation="eager")
    net = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # random init is near uniform: noise makes clear argmaxes
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    net.save_pretrained(folder)
    return net, llmviz.load_model(str(folder))


IDS = [3, 17, 42, 8, 8, 29, 1]
SOURCE = [5, 17, 40, 2, 9, 29, 33]


def run(net, ids):
    with torch.no_grad():
        return net(torch.tensor([ids])).logits[0].numpy()


def same(trace, logits):
    np.testing.assert_allclose(trace["logits"], logits, atol=ATOL, rtol=0)
    np.testing.assert_allclose(trace["probs"], torch.softmax(torch.tensor(logits), -1).numpy(), atol=ATOL, rtol=0)


def zero_head(proj, head: int, d_head: int, pos=None):
    """A forward pre-hook on the attention's output projection: zero one head's slice of its input."""
    def hook(module, args):
        x = args[0].clone()
        x[0, slice(None) if pos is None else pos, head * d_head:(head + 1) * d_head] = 0
        return (x, *args[1:])
    return proj.register_forward_pre_hook(hook)


def hidden(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("layer,head,pos", [(0, 1, None), (1, 3, 4), (2, 0, None)])
def test_zeroing_a_head_equals_a_torch_hook(gpt2, layer, head, pos):
    net, model = gpt2
    d_head = model.config.d_head
    handle = zero_head(net.transformer.h[layer].attn.c_proj, head, d_head, pos)
    try:
        edited = run(net, IDS)
    finally:
        handle.remove()
    where = {"head": head} if pos is None else {"head": head, "pos": pos}
    t = model.run(IDS, edits=[{"tensor": f"blocks.{layer}.attn.hook_z", "where": where, "set": "zero"}])
    same(t, edited)
    assert np.abs(edited - run(net, IDS)).max() > 1e-3  # the edit changes the answer


@pytest.mark.parametrize("layer,pos", [(0, 3), (1, 6), (2, 0)])
def test_patching_a_position_equals_a_torch_hook(gpt2, layer, pos):
    net, model = gpt2
    block, got = net.transformer.h[layer], {}

    def keep(module, args, output):
        got["h"] = hidden(output)[0, pos].clone()

    def patch(module, args, output):
        h = hidden(output).clone()
        h[0, pos] = got["h"]
        return (h, *output[1:]) if isinstance(output, tuple) else h

    for hook, ids in ((keep, SOURCE), (patch, IDS)):
        handle = block.register_forward_hook(hook)
        try:
            logits = run(net, ids)
        finally:
            handle.remove()
    t = model.run(IDS, edits=[{"tensor": f"blocks.{layer}.hook_resid_post", "where": {"pos": pos},
                               "set": {"from_tokens": SOURCE}}])
    same(t, logits)
    assert np.abs(logits - run(net, IDS)).max() > 1e-3


def test_zeroing_a_llama_head_equals_a_torch_hook(tmp_path):
    net = save_modern(tmp_path, "llama-gqa3")
    model = llmviz.load_model(str(tmp_path))
    ids = [4, 90, 13, 13, 55, 7]
    attn = net.model.layers[1].self_attn
    handle = zero_head(attn.o_proj, 4, model.config.d_head, 2)
    try:
        edited = run(net, ids)
    finally:
        handle.remove()
    t = model.run(ids, edits=[{"tensor": "blocks.1.attn.hook_z", "where": {"head": 4, "pos": 2}, "set": "zero"}])
    same(t, edited)
    assert np.abs(edited - run(net, ids)).max() > 1e-3
