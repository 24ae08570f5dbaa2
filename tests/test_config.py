import pytest

from llmviz import PRESETS, ModelConfig

# Parameter counts as published for the released checkpoints (Hugging Face model cards / num_parameters()).
PUBLISHED = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}


@pytest.mark.parametrize("name", PUBLISHED)
def test_gpt2_counts_match_the_released_models(name):
    assert PRESETS[name].n_params == PUBLISHED[name]


def test_gpt3_is_175b():
    cfg = PRESETS["gpt3"]
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_ctx) == (96, 96, 12288, 2048)
    assert round(cfg.n_params / 1e9, 1) == 174.6


def test_nano_gpt_shape_and_count_equal_the_torch_module():
    pytest.importorskip("torch")
    from torch_gpt import TorchGPT

    cfg = PRESETS["nano-gpt"]
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.n_ctx) == (3, 3, 48, 3, 11)
    net = TorchGPT(cfg)
    assert cfg.n_params == sum(p.numel() for p in net.parameters()) == 85_728


@pytest.mark.parametrize("shape", [(2, 4, 64, 50, 16), (3, 3, 48, 3, 11), (1, 2, 40, 7, 5)])
def test_counts_equal_transformers_for_tied_models(shape):
    transformers = pytest.importorskip("transformers")
    n_layer, n_head, n_embd, vocab, n_ctx = shape
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab, n_positions=n_ctx))
    assert ModelConfig("t", n_layer, n_head, n_embd, vocab, n_ctx).n_params == hf.num_parameters()


def test_n_embd_must_split_into_heads():
    with pytest.raises(ValueError, match="divisible by n_head"):
        ModelConfig("bad", 1, 5, 48, 3, 11)
