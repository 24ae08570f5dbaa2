"""Reference models for the tests: a minGPT-style torch GPT whose weights we copy into llmviz."""

from __future__ import annotations

import numpy as np
import torch

from llmviz.core.arch.gpt2 import canonical_state, weights_from_state
from llmviz.core.config import ModelConfig
from llmviz.core.model import Model
from llmviz.io.tokenizer import CharTokenizer
from torch_gpt import TorchGPT


def random_torch_gpt(cfg: ModelConfig, seed: int = 0) -> TorchGPT:
    """A TorchGPT with every parameter random (biases and layer-norm gains too), so no term is trivially 0 or 1."""
    torch.manual_seed(seed)
    net = TorchGPT(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3 if p.dim() == 1 else 0.1)
    return net


def numpy_model_of(net: TorchGPT) -> Model:
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return Model(net.cfg, weights_from_state(canonical_state(state), net.cfg, layout="linear"), None, "test")


def torch_record(net: TorchGPT, tokens: list[int]) -> dict[str, np.ndarray]:
    """Every intermediate the torch model records, batch axis dropped, in llmviz's axis order."""
    rec: dict = {}
    with torch.no_grad():
        net(torch.tensor([tokens]), record=rec)
    return {k: v[0].numpy() for k, v in rec.items()}


def torch_model_of(model: Model) -> TorchGPT:
    """The same weights in a TorchGPT (inverse of numpy_model_of), for a model loaded from disk."""
    cfg, w = model.config, model.weights
    C = cfg.n_embd
    net = TorchGPT(cfg).eval()
    sd = {"transformer.wte.weight": w["embed.W_E"], "transformer.wpe.weight": w["pos_embed.W_pos"],
          "transformer.ln_f.weight": w["ln_final.w"], "transformer.ln_f.bias": w["ln_final.b"],
          "lm_head.weight": w["unembed.W_U"].T}
    for i in range(cfg.n_layer):
        h, L = f"transformer.h.{i}.", f"blocks.{i}."
        sd[h + "ln_1.weight"], sd[h + "ln_1.bias"] = w[L + "ln1.w"], w[L + "ln1.b"]
        sd[h + "ln_2.weight"], sd[h + "ln_2.bias"] = w[L + "ln2.w"], w[L + "ln2.b"]
        sd[h + "attn.c_attn.weight"] = np.concatenate(
            [w[L + f"attn.W_{c}"].transpose(1, 0, 2).reshape(C, C) for c in "QKV"], axis=1).T
        sd[h + "attn.c_attn.bias"] = np.concatenate([w[L + f"attn.b_{c}"].reshape(C) for c in "QKV"])
        sd[h + "attn.c_proj.weight"] = w[L + "attn.W_O"].reshape(C, C).T
        sd[h + "attn.c_proj.bias"] = w[L + "attn.b_O"]
        sd[h + "mlp.c_fc.weight"], sd[h + "mlp.c_fc.bias"] = w[L + "mlp.W_in"].T, w[L + "mlp.b_in"]
        sd[h + "mlp.c_proj.weight"], sd[h + "mlp.c_proj.bias"] = w[L + "mlp.W_out"].T, w[L + "mlp.b_out"]
    sd = {k: torch.tensor(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing = net.load_state_dict(sd, strict=False)
    assert missing.unexpected_keys == [] and all(k.endswith("attn.bias") for k in missing.missing_keys)
    return net


__all__ = ["CharTokenizer", "numpy_model_of", "random_torch_gpt", "torch_model_of", "torch_record"]


def train_bpe(vocab_size: int = 300):
    """A small GPT-2-style byte-level BPE tokenizer trained offline on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = ["the quick brown fox jumps over the lazy dog", "hello world, hello attention",
            "a transformer sorts the tokens", "the residual stream flows down the model"] * 20
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def hf_gpt2_folder(folder, tokenizer=None, seed: int = 0, **config):
    """Save a random transformers GPT2LMHeadModel (eager attention, random biases and norms) to `folder`."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(attn_implementation="eager", **config)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(0.0 if name.endswith("bias") else 1.0, 0.2)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save(str(folder / "tokenizer.json"))
    return model
