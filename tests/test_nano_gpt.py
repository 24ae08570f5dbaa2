"""The bundled nano-gpt: it sorts, it generates, it refuses bad input clearly."""

import itertools

import numpy as np
import pytest

from llmviz import LlmvizError, load_model
from llmviz.core.errors import InputTooLong, ModelNotFound, NoWeights


def test_sorts_every_one_of_the_729_inputs(nano):
    wrong = [s for s in map("".join, itertools.product("ABC", repeat=6))
             if nano.generate(s, 6).text != "".join(sorted(s))]
    assert wrong == []


def test_generate_cbabbc(nano):
    g = nano.generate("CBABBC")
    assert g.text == "ABBBCC"
    assert g.tokens == [0, 1, 1, 1, 2, 2] and g.prompt == [2, 1, 0, 1, 1, 2]
    assert all(0.5 < p <= 1 for p in g.probs)


def test_generate_accepts_token_ids(nano):
    assert nano.generate([2, 1, 0, 1, 1, 2], 6).tokens == [0, 1, 1, 1, 2, 2]


def test_sampling_is_reproducible_with_a_seed_and_top_k_1_is_greedy(nano):
    a = nano.generate("CAB", 8, temperature=5.0, seed=1)
    b = nano.generate("CAB", 8, temperature=5.0, seed=1)
    assert a.tokens == b.tokens
    draws = {tuple(nano.generate("CAB", 8, temperature=5.0, seed=s).tokens) for s in range(6)}
    assert len(draws) > 1  # temperature 5 really samples
    assert nano.generate("CAB", 8, temperature=5.0, top_k=1, seed=3).tokens == nano.generate("CAB", 8).tokens
    assert nano.generate("CAB", 8, temperature=5.0, top_p=1e-6, seed=3).tokens == nano.generate("CAB", 8).tokens


def test_long_generation_slides_the_context(nano):
    g = nano.generate("CBABBC", 20)
    assert len(g.tokens) == 20 and g.text[:6] == "ABBBCC"


def test_tokens_are_a_b_c(nano):
    assert nano.encode("ABC") == [0, 1, 2]
    assert nano.run("CBA").token_strs == ["C", "B", "A"]


@pytest.mark.parametrize("prompt,error,message", [
    ("CBD", LlmvizError, "unknown token 'D' at position 2: this model accepts only A, B, C"),
    ("abc", LlmvizError, "unknown token 'a' at position 0"),
    ("", LlmvizError, "the input is empty"),
    ("ABCABCABCABC", InputTooLong, "the input has 12 tokens; nano-gpt's context holds at most 11"),
    ([0, 3], LlmvizError, "token id 3 is out of range: nano-gpt has ids 0 to 2"),
])
def test_bad_input_names_what_is_allowed(nano, prompt, error, message):
    with pytest.raises(error, match=message):
        nano.run(prompt)


def test_structure_only_and_unknown_models():
    gpt3 = load_model("gpt3")
    assert not gpt3.has_weights and gpt3.config.n_layer == 96
    with pytest.raises(NoWeights, match="structure only"):
        gpt3.run([1, 2])
    with pytest.raises(ModelNotFound, match="unknown model 'gpt5'"):
        load_model("gpt5")


def test_trace_is_float32_without_batch_axis(nano):
    t = nano.run("CBABBC")
    assert t["blocks.0.attn.hook_pattern"].shape == (3, 6, 6)
    assert t["hook_embed"].dtype == np.float32
    np.testing.assert_array_equal(t["hook_embed"], nano.weights["embed.W_E"][[2, 1, 0, 1, 1, 2]])


def test_bundled_weights_carry_the_preset_config(nano):
    from llmviz.core.config import PRESETS

    assert nano.config == PRESETS["nano-gpt"]  # the task, its length and its answer length included
