"""Models no laptop holds, traced by nnsight (https://nnsight.net): locally, or on NDIF's hosted models (remote).

    model = load_nnsight("./tiny-llama")                     # a Hugging Face folder, run by transformers
    model = load_nnsight("meta-llama/Llama-3.1-70B", remote=True)   # NDIF: the API key in NDIF_API_KEY
    trace = model.run("The quick brown fox")
    trace["blocks.0.attn.hook_pattern"]    # [head, pos, key_pos], as nnsight returned it
    trace["blocks.0.attn.hook_z"]          # NotFetched: this engine did not return it

The config and the tokenizer are read as llmviz reads a Hugging Face folder (io/huggingface.py), so the graph, its
names and its axes are llmviz's; the numbers are nnsight's. One `model.trace(...)` saves the outputs (and a few inputs)
of the Hugging Face modules that map onto the graph's names (`FETCHES`), each reshaped to the graph's axes. The model
keeps no numpy weights, and its trace holds only what was fetched: any other tensor, weights included, is refused as
not fetched, never recomputed. What needs the weights or a pass of llmviz's own (gradients, interventions, generation
on the KV cache, quantization, training) is refused by name with EngineCannot.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import ModelConfig
from ..core.errors import EngineCannot, LlmvizError, NotFetched
from ..core.model import Model, Stopped, Trace
from .huggingface import read_config
from .tokenizer import HFTokenizer

ENGINE = "nnsight"
API_KEY_VARIABLE = "NDIF_API_KEY"  # what nnsight reads for remote use (its config: env > ~/.config/nnsight/config.yaml)

# One fetch: a graph name, the module path (its layer as {i}), "output" or "input", which element of a tuple output,
# and how to reshape it to the graph's axes ("heads": [pos, n·A] -> [pos, n, A]; "qkv": GPT-2's fused c_attn, its
# third `part`; "pattern": [head, pos, key_pos] as it is). In each list, the order the model runs them (nnsight reads
# modules in execution order).
Fetch = tuple[str, str, str, int | None, str, int]

GPT2_EMBED: list[Fetch] = [("hook_embed", "transformer.wte", "output", None, "", 0),
                           ("hook_pos_embed", "transformer.wpe", "output", None, "", 0)]
GPT2_LAYER: list[Fetch] = [
    ("hook_resid_pre", "transformer.h.{i}", "input", None, "", 0),
    ("ln1.hook_out", "transformer.h.{i}.ln_1", "output", None, "", 0),
    ("attn.hook_q", "transformer.h.{i}.attn.c_attn", "output", None, "qkv", 0),
    ("attn.hook_k", "transformer.h.{i}.attn.c_attn", "output", None, "qkv", 1),
    ("attn.hook_v", "transformer.h.{i}.attn.c_attn", "output", None, "qkv", 2),
    ("hook_attn_out", "transformer.h.{i}.attn", "output", 0, "", 0),
    ("attn.hook_pattern", "transformer.h.{i}.attn", "output", 1, "pattern", 0),
    ("hook_resid_mid", "transformer.h.{i}.ln_2", "input", None, "", 0),
    ("ln2.hook_out", "transformer.h.{i}.ln_2", "output", None, "", 0),
    ("mlp.hook_pre", "transformer.h.{i}.mlp.c_fc", "output", None, "", 0),
    ("mlp.hook_post", "transformer.h.{i}.mlp.act", "output", None, "", 0),
    ("hook_mlp_out", "transformer.h.{i}.mlp", "output", None, "", 0),
    ("hook_resid_post", "transformer.h.{i}", "output", 0, "", 0),
]
GPT2_HEAD: list[Fetch] = [("ln_final.hook_out", "transformer.ln_f", "output", None, "", 0),
                          ("logits", "lm_head", "output", None, "", 0)]

LLAMA_EMBED: list[Fetch] = [("hook_embed", "model.embed_tokens", "output", None, "", 0)]
LLAMA_LAYER: list[Fetch] = [
    ("hook_resid_pre", "model.layers.{i}", "input", None, "", 0),
    ("ln1.hook_out", "model.layers.{i}.input_layernorm", "output", None, "", 0),
    ("attn.hook_q", "model.layers.{i}.self_attn.q_proj", "output", None, "heads", 0),  # before the rotary embedding
    ("attn.hook_k", "model.layers.{i}.self_attn.k_proj", "output", None, "heads", 1),
    ("attn.hook_v", "model.layers.{i}.self_attn.v_proj", "output", None, "heads", 1),
    ("hook_attn_out", "model.layers.{i}.self_attn", "output", 0, "", 0),
    ("attn.hook_pattern", "model.layers.{i}.self_attn", "output", 1, "pattern", 0),
    ("hook_resid_mid", "model.layers.{i}.post_attention_layernorm", "input", None, "", 0),
    ("ln2.hook_out", "model.layers.{i}.post_attention_layernorm", "output", None, "", 0),
    ("mlp.hook_pre", "model.layers.{i}.mlp.gate_proj", "output", None, "", 0),
    ("mlp.hook_act", "model.layers.{i}.mlp.act_fn", "output", None, "", 0),
    ("mlp.hook_pre_linear", "model.layers.{i}.mlp.up_proj", "output", None, "", 0),
    ("mlp.hook_post", "model.layers.{i}.mlp.down_proj", "input", None, "", 0),
    ("hook_mlp_out", "model.layers.{i}.mlp", "output", None, "", 0),
    ("hook_resid_post", "model.layers.{i}", "output", 0, "", 0),
]
LLAMA_HEAD: list[Fetch] = [("ln_final.hook_out", "model.norm", "output", None, "", 0),
                           ("logits", "lm_head", "output", None, "", 0)]

FETCHES = {"gpt2": (GPT2_EMBED, GPT2_LAYER, GPT2_HEAD), "llama": (LLAMA_EMBED, LLAMA_LAYER, LLAMA_HEAD)}

# What the page offers no model of this engine (ModelInfo.cannot: the control hidden or disabled, this said why), each
# with what it needs; and the line under the model's title (ModelInfo.engine_note).
CANNOT = {"gradients": "the backward pass (gradients)", "generate": "generation", "edit": "an intervention (an edit)",
          "embedding_map": "a map of the embedding weights", "lens": "the logit lens (it reads the unembedding weights)",
          "branches": "a tree of continuations (generation)",
          "attribution": "logit attribution (it reads the unembedding weights)",
          "patching": "activation patching (an intervention)"}
NOTE = f"traced by {ENGINE}: grey blocks were not fetched (hover one to see why)"


def plan(config: ModelConfig) -> list[Fetch]:
    """Every fetch of one pass, with graph names and module paths filled in, in the order the model runs them."""
    if config.arch not in FETCHES:
        raise LlmvizError(f"the nnsight engine maps GPT-2 and the Llama family onto llmviz's names, not "
                          f"{config.arch!r}: serve {config.name} with --engine numpy")
    embed, layer, head = FETCHES[config.arch]
    if config.embed_scale:  # Gemma: its embedding module's output is already scaled; the stream into layer 0 is fetched
        embed = []
    out = list(embed)
    for i in range(config.n_layer):
        out += [(f"blocks.{i}.{name}", path.format(i=i), where, item, shape, part)
                for name, path, where, item, shape, part in layer]
    return out + head


def _module(lm, path: str):
    m = lm
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


class NnsightModel(Model):
    """A Hugging Face model run by nnsight: llmviz's config, graph and tokenizer, no numpy weights. `run` returns an
    NnsightTrace of the tensors nnsight returned."""

    engine = ENGINE

    def __init__(self, config: ModelConfig, lm, tokenizer, source: str = "", remote: bool = False):
        super().__init__(config, None, tokenizer, source=source)
        self.lm = lm  # the nnsight model (its weights stay in torch, or on NDIF's servers)
        self.remote = remote
        self.fetches = plan(config)

    @property
    def has_weights(self) -> bool:  # it computes passes (with weights llmviz does not hold)
        return True

    def cannot(self, what: str) -> EngineCannot:
        return EngineCannot(f"{self.name} is served by the {ENGINE} engine, which returns the tensors of a forward "
                            f"pass only: {what} needs llmviz's own numpy pass; serve it with --engine numpy")

    def require_weights(self):
        raise self.cannot("its weights are not fetched, so this")

    def unavailable(self) -> dict[str, str]:
        """The page's features this model cannot offer, each with why (CANNOT, in EngineCannot's words)."""
        return {feature: str(self.cannot(what)) for feature, what in CANNOT.items()}

    note = NOTE
    walk_note = (f"traced by {ENGINE}, which returns a forward pass's tensors but not its weights: the steps that need "
                 "llmviz's own numbers are left out")

    def fetched_names(self) -> list[str]:
        """The graph's tensors this engine returns, in graph order (the input's tokens, and `probs`)."""
        names = {f[0] for f in self.fetches} | {"tokens", "probs"}
        return [n for n in self.graph.names() if n in names]

    def run(self, prompt, keep: Collection[str] | None = None, visit: Callable[[str, np.ndarray], None] | None = None,
            stop: Callable[[], bool] | None = None, only: Collection[str] | None = None, edits: Sequence = ()) -> Trace:
        """One nnsight trace of the prompt; keep and only are ignored (what is fetched is kept), edits refused."""
        if edits:
            raise self.cannot("an intervention")
        ids = self.encode(prompt)
        if stop is not None and stop():
            raise Stopped("stopped before the forward pass began")
        values = self._fetch(ids)
        if stop is not None and stop():
            raise Stopped("stopped after the forward pass")
        if visit is not None:
            for name in self.fetched_names():
                visit(name, values[name])
        probs = values["probs"]
        return NnsightTrace(self, ids, values, probs.argmax(-1).tolist(), probs[-1].copy(),
                            next_logits=values["logits"][-1].copy())

    def _fetch(self, ids: list[int]) -> dict[str, np.ndarray]:
        import torch

        nnsight = _nnsight()

        saved: dict[Any, Any] = {}
        paths = list(dict.fromkeys((path, where) for _, path, where, *_ in self.fetches))
        try:
            with torch.no_grad(), self.lm.trace(torch.tensor([ids]), remote=self.remote):
                for path, where in paths:
                    m = _module(self.lm, path)
                    got = m.output if where == "output" else m.input
                    saved[path, where] = nnsight.save(got)
                saved["probs"] = nnsight.save(torch.softmax(got.float(), -1))  # the last fetch: the logits
        except LlmvizError:
            raise
        except Exception as e:  # nnsight's or transformers' own error: one line naming the engine
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise LlmvizError(f"the {ENGINE} engine could not trace {self.name}: {type(e).__name__}: {reason}") from None
        cfg = self.config
        values: dict[str, np.ndarray] = {"tokens": np.asarray(ids, np.int64), "probs": _numpy(saved["probs"])[0]}
        for name, path, where, item, shape, part in self.fetches:
            v = saved[path, where]
            if isinstance(v, (tuple, list)):
                v = v[item or 0]
            elif item not in (None, 0):
                continue  # (an attention that returned no pattern: left not fetched)
            if v is None:
                continue
            a = _numpy(v)[0]
            if shape == "qkv":
                C = cfg.n_embd
                a = a[:, part * C:(part + 1) * C].reshape(len(ids), cfg.n_head, cfg.d_head)
            elif shape == "heads":
                a = a.reshape(len(ids), cfg.n_head if part == 0 else cfg.kv_heads, cfg.d_head)
            want = self.graph[name].shape(self.graph.sizes(len(ids)))
            if a.shape != tuple(want):
                raise LlmvizError(f"the {ENGINE} engine returned {name} of shape {list(a.shape)}; llmviz's graph has "
                                  f"{list(want)}")
            values[name] = np.ascontiguousarray(a)
        return values

    # What needs weights or llmviz's own pass, refused by name (a 4xx from the server, one line from the CLI).
    def gradients(self, *args, **kwargs):
        raise self.cannot("the backward pass (gradients)")

    def edits(self, *args, **kwargs):
        raise self.cannot("an intervention")

    def batch_values(self, *args, **kwargs):
        raise self.cannot("a batch pass (training, evaluation)")

    def batch_gradients(self, *args, **kwargs):
        raise self.cannot("a batch's gradients (training)")

    def step(self, *args, **kwargs):
        raise self.cannot("a generation step on llmviz's KV cache")

    def generate(self, *args, **kwargs):
        raise self.cannot("generation")

    def _compute(self, *args, **kwargs):
        raise self.cannot("recomputing a tensor")


class NnsightTrace(Trace):
    """The tensors one nnsight trace returned, by graph name. Any other tensor of the graph (weights included) raises
    NotFetched: it is never recomputed."""

    def __init__(self, model: NnsightModel, tokens: list[int], values: dict[str, np.ndarray], predicted: list[int],
                 next_probs: np.ndarray, next_logits: np.ndarray):
        super().__init__(model, tokens, values, predicted, next_probs, next_logits=next_logits)
        self.fetched: frozenset[str] = frozenset(values)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.kept:
            return self.kept[name]
        if name not in self.graph:
            raise KeyError(f"{name!r} is not a tensor of {self.model.name}'s graph")
        raise NotFetched(f"{name} was not fetched by the {ENGINE} engine: it returns "
                         f"{', '.join(_kinds(self.fetched))} of each layer; llmviz recomputes nothing")

    def computed(self) -> list[str]:
        return [n for n in self.graph.names("input", "activation", "aggregate") if n in self.fetched]

    def forget(self) -> None:
        pass


def _kinds(fetched) -> list[str]:
    """The fetched tensors of layer 0, as a short list for a message."""
    return sorted(n.removeprefix("blocks.0.") for n in fetched if n.startswith("blocks.0."))


def _numpy(t) -> np.ndarray:
    return t.detach().to("cpu").float().numpy()


def load_nnsight(source: str, remote: bool = False, shown: str | None = None) -> NnsightModel:
    """A Hugging Face folder (config.json, weights, tokenizer) or hub id, run by nnsight. remote: on NDIF's hosted
    models (the API key in NDIF_API_KEY; the config and tokenizer come from the hub, the weights never do)."""
    nnsight = _nnsight()
    path = Path(source).expanduser()
    shown = shown or (path.name if path.is_absolute() else source)
    if path.is_dir():
        folder = path
    elif path.exists():
        raise LlmvizError(f"{source}: the nnsight engine reads a Hugging Face model folder or hub id, not a file")
    else:
        folder = _hub_files(source)
    config = read_config(folder, source if not path.is_dir() else path.name, shown)
    plan(config)  # an architecture it cannot map: refused before anything loads
    if remote and not _api_key():
        raise LlmvizError(f"remote use of NDIF needs an API key: set {API_KEY_VARIABLE} (from https://login.ndif.us)")
    tok_path = folder / "tokenizer.json"
    tokenizer = HFTokenizer(tok_path) if tok_path.is_file() else None
    try:
        if remote:  # NDIF runs the hub model; locally only its structure (meta tensors) is built
            lm = nnsight.TransformersModel(source, task="text-generation")
        else:  # local: transformers loads the weights, with the attention that returns its pattern; nnsight wraps it
            import torch
            from transformers import AutoModelForCausalLM

            net = AutoModelForCausalLM.from_pretrained(str(folder) if path.is_dir() else source, attn_implementation="eager", dtype=torch.float32)
            lm = nnsight.NNsight(net.eval())
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise LlmvizError(f"{source}: nnsight could not load it ({type(e).__name__}: {reason})") from None
    return NnsightModel(config, lm, tokenizer, source=f"{shown} ({ENGINE}{', remote' if remote else ''})",
                        remote=remote)


def _nnsight():
    """nnsight, imported without the `.save()` it mounts on every Python object at import: that method breaks other
    libraries' classes defined after it (anyio's, which the server imports, refuse an attribute without an annotation).
    The engine calls nnsight.save(value) instead."""
    try:
        import nnsight
    except ImportError:
        raise LlmvizError("the nnsight engine needs nnsight: pip install 'llmviz[nnsight]'") from None
    try:
        from nnsight._c import unmount
        if unmount is not None and "save" in object.__dict__:
            unmount("save")
    except ImportError:
        pass
    return nnsight


def _api_key() -> str | None:
    try:
        from nnsight import CONFIG
        return CONFIG.API.APIKEY
    except (ImportError, AttributeError):
        import os
        return os.environ.get(API_KEY_VARIABLE)


def _hub_files(repo_id: str) -> Path:
    """A hub model's config.json and tokenizer.json (not its weights), from the cache or the hub."""
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, allow_patterns=["config.json", "tokenizer.json"]))
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise LlmvizError(f"unknown model {repo_id!r}: not a folder, and the Hugging Face hub could not provide its "
                          f"config.json ({reason})") from None
