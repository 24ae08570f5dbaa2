"""Model configurations: the handful of numbers that fix a GPT's shape.

Every preset's parameter count is computed from these numbers, never typed in: by its architecture's module
(llmviz.core.arch), which reads a config. Config sits below the architectures and imports none of them; each
registers its count in PARAM_PARTS (see ModelConfig.param_parts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import BadModelFile
from .ops.activations import ACTIVATIONS
from .ops.attention import inv_freq

# The longest context llmviz computes: 2**24 = 16,777,216 positions. Rotary angles are position × frequency in float32,
# which holds every whole number only up to 2**24; the longest released contexts (10 million tokens) fit below it.
MAX_CONTEXT = 2**24
F32_MAX = float(np.finfo(np.float32).max)


class ConfigError(ValueError):
    """A setting ModelConfig refuses. `field` is its ModelConfig name, `rule` what it must be and what it was; the
    message names the field as `shown` (default: the field), and a reader of a file that names it otherwise says
    that name instead (see `explain`)."""

    def __init__(self, field: str, rule: str, shown: str | None = None):
        super().__init__(f"{shown or field} {rule}")
        self.field, self.rule = field, rule


def got(v) -> str:
    """A refused value as a message shows it: its repr, cut short (a config value can be a megabyte of text)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:  # repr of a huge int is long, or refused
        return f"an integer of {v.bit_length():,} bits"
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


@contextmanager
def reading_hf_config(source, names: Mapping[str, str]):
    """Around making a ModelConfig from a Hugging Face config.json: a missing key, or a value ModelConfig refuses, is
    one line naming the file and the setting as config.json names it (`names`: ModelConfig field -> its name there)."""
    try:
        yield
    except KeyError as e:
        raise BadModelFile(f"{source}: config.json lacks {e.args[0]!r}") from None
    except (ValueError, TypeError) as e:
        raise BadModelFile(f"{source}: {explain(e, names)}") from None


def explain(e: Exception, names: Mapping[str, str]) -> str:
    """A refused config's message with its field as a file names it (names: ModelConfig field -> the file's name)."""
    return f"{names[e.field]} {e.rule}" if isinstance(e, ConfigError) and e.field in names else str(e)


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a decoder-only transformer. `arch` names the architecture module (llmviz.core.arch) that
    builds its graph and counts its parameters: "gpt2" (GPT-2, nanoGPT, minGPT), "llama" (Llama, Mistral, Qwen2,
    Gemma), "neox" (GPT-NeoX, Pythia) or "phi"."""

    name: str
    n_layer: int
    n_head: int
    n_embd: int
    vocab_size: int
    n_ctx: int
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_new"  # GPT-2's tanh approximation of GELU; see ACTIVATIONS
    arch: str = "gpt2"  # the architecture module (llmviz.core.arch) that builds its graph
    tied_unembed: bool = True  # W_U is W_E transposed (GPT-2); minGPT keeps its own lm_head
    unembed_bias: bool = False
    bias: bool = True  # False: no biases in linear layers and layer norms (nanoGPT's bias=False)
    n_inner: int | None = None  # MLP width; None means 4 * n_embd
    scale_attn_weights: bool = True  # divide attention scores by sqrt(d_head)
    scale_attn_by_inverse_layer_idx: bool = False  # also divide layer i's scores by i + 1
    description: str = ""
    example: str = ""  # an input to start with
    task: str = ""  # what the model was trained to do, in a few words, for the page's hint
    task_tokens: int | None = None  # the input length it was trained on
    answer_tokens: int | None = None  # how many greedy next tokens make its answer (nano-gpt: the sorted six)
    # The Llama family (arch "llama"); GPT-2 leaves these at their defaults.
    norm: str = "layer"  # "layer": LayerNorm; "rms": RMSNorm
    mlp: str = "plain"  # "plain": act(x · W_in) · W_out; "gated": (act(x · W_gate) × x · W_in) · W_out
    n_kv_head: int | None = None  # key-value heads (grouped-query attention); None: one per query head
    head_dim: int | None = None  # channels per head; None: n_embd / n_head
    qkv_bias: bool = False  # biases on the query, key and value projections only (Qwen2)
    rope_theta: float | None = None  # rotary position embeddings with this base; None: learned positions
    rope_type: str = "default"  # "default", or "llama3" (Llama 3's frequency scaling)
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 1.0
    rope_original_max: int = 0
    embed_scale: bool = False  # the token embedding is multiplied by √n_embd (Gemma)
    rms_offset: float = 0.0  # RMSNorm's gain is offset + w (Gemma: 1); the graph's gain holds the sum
    rotary_fraction: float = 1.0  # the share of each head's channels the rotary embedding turns (the first ones)
    parallel: bool = False  # attention and the MLP both read the layer's input, and both outputs are added to it
    image_side: int = 0  # an image classifier (arch "mlp"): its input is an image_side × image_side image; 0: tokens
    input_size: int = 0  # a classifier of points (arch "neuron"): its input is input_size numbers; 0: tokens or an image

    def __post_init__(self) -> None:
        """Refuse a config that describes no model, naming the setting and what it must be."""
        def need(ok: bool, field: str, rule: str, shown: str | None = None) -> None:
            if not ok:
                raise ConfigError(field, rule, shown)

        def whole(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def number(v) -> bool:  # a finite int or float (a huge int is finite too: math.isfinite would overflow)
            return whole(v) or (isinstance(v, float) and math.isfinite(v))

        for key in ("n_layer", "n_head", "n_embd", "vocab_size"):
            v, least = getattr(self, key), 0 if (key == "n_layer" and self.arch in ("bigram", "neuron")) else 1  # no layer
            need(whole(v) and v >= least, key, f"must be a whole number >= {least} (got {got(v)})")
        need(whole(self.n_ctx) and 1 <= self.n_ctx <= MAX_CONTEXT, "n_ctx",
             f"must be a whole number from 1 to {MAX_CONTEXT:,} (2**24 positions, the longest context llmviz computes) "
             f"(got {got(self.n_ctx)})")
        for key in ("image_side", "input_size"):
            need(whole(getattr(self, key)) and getattr(self, key) >= 0, key,
                 f"must be a whole number >= 0 (got {got(getattr(self, key))})")
        for key in ("n_inner", "task_tokens", "answer_tokens"):
            v = getattr(self, key)
            need(v is None or (whole(v) and v >= 1), key, f"must be null or a whole number >= 1 (got {got(v)})")
        eps = self.layer_norm_eps
        need(number(eps) and eps > 0, "layer_norm_eps", f"must be a number > 0 (got {got(eps)})", "layer_norm_epsilon")
        for key in ("tied_unembed", "unembed_bias", "bias", "scale_attn_weights", "scale_attn_by_inverse_layer_idx",
                    "parallel"):
            need(isinstance(getattr(self, key), bool), key, f"must be true or false (got {got(getattr(self, key))})")
        for key, allowed in (("norm", ("layer", "rms")), ("mlp", ("plain", "gated")), ("rope_type", ("default", "llama3"))):
            need(getattr(self, key) in allowed, key, f"must be one of {', '.join(allowed)} (got {got(getattr(self, key))})")
        for key in ("name", "activation", "description", "example", "task"):
            need(isinstance(getattr(self, key), str), key, f"must be a string (got {got(getattr(self, key))})")
        need(self.n_kv_head is None or (whole(self.n_kv_head) and self.n_kv_head >= 1 and self.n_head % self.n_kv_head == 0),
             "n_kv_head", f"({got(self.n_kv_head)}) must divide the number of heads ({self.n_head})", "num_key_value_heads")
        need(self.head_dim is None or (whole(self.head_dim) and self.head_dim >= 1), "head_dim",
             f"must be null or a whole number >= 1 (got {got(self.head_dim)})")
        need(not (self.n_embd % self.n_head and self.head_dim is None), "n_embd",
             f"({self.n_embd}) must be divisible by n_head ({self.n_head})")
        f = self.rotary_fraction
        need(number(f) and 0 < f <= 1, "rotary_fraction", f"must be a number above 0 and at most 1 (got {got(f)})")
        need(self.d_rotary >= 2 and self.d_rotary % 2 == 0, "rotary_fraction",
             f"({f:g}) turns {self.d_rotary} of each head's {self.d_head} channels: the rotary embedding turns pairs, "
             "so an even number of them, at least 2")
        object.__setattr__(self, "rotary_fraction", float(f))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unsupported activation {got(self.activation)}: llmviz supports {', '.join(ACTIVATIONS)}")
        self._check_rope(need, whole, number)

    def _check_rope(self, need, whole, number) -> None:
        """The rotary settings: numbers > 0 that float32 holds (Llama 3's scaling divides by its factors and by their
        difference), and frequencies and angles over the whole context that are float32 numbers, so that nothing
        overflows or divides by zero when the model runs. Stored as floats."""
        llama3 = self.rope_type == "llama3"
        v = self.rope_theta  # None: learned positions (GPT-2); a rotary architecture refuses it (ops.attention.inv_freq)
        need(v is None or (number(v) and 0 < v <= F32_MAX), "rope_theta",
             f"must be a number > 0 that float32 holds (at most {F32_MAX:.3g}) (got {got(v)})")
        for key in ("rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"):
            v = getattr(self, key)
            need(number(v) and 0 < v <= F32_MAX, key,
                 f"must be a number > 0 that float32 holds (at most {F32_MAX:.3g}) (got {got(v)})")
            object.__setattr__(self, key, float(v))
        if self.rope_theta is not None:
            object.__setattr__(self, "rope_theta", float(self.rope_theta))
        low, high, original = self.rope_low_freq_factor, self.rope_high_freq_factor, self.rope_original_max
        need(not llama3 or high > low, "rope_high_freq_factor",
             f"must be greater than low_freq_factor (got {high:g}, low_freq_factor {low:g}): Llama 3's rope scaling "
             "divides by their difference")
        need(whole(original) and (1 if llama3 else 0) <= original <= MAX_CONTEXT, "rope_original_max",
             f"must be a whole number from {1 if llama3 else 0} to {MAX_CONTEXT:,} (got {got(original)})")
        if self.rope_theta is None:
            return
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                freq = np.asarray(inv_freq(self), np.float32)
                ok = bool(np.isfinite(np.float32(self.n_ctx - 1) * freq).all())  # the largest angle of each pair
        except (FloatingPointError, OverflowError, ZeroDivisionError):
            ok = False
        scaling = f" with factor {self.rope_factor:g}, low_freq_factor {low:g} and high_freq_factor {high:g}" if llama3 else ""
        need(ok, "rope_theta", f"({self.rope_theta:g}){scaling} gives rotary frequencies or angles beyond float32's range "
                               f"over {self.n_ctx:,} positions")

    def attn_scale(self, layer: int) -> float:
        """What layer `layer` divides its q · k by."""
        s = float(self.d_head) ** 0.5 if self.scale_attn_weights else 1.0
        return s * (layer + 1) if self.scale_attn_by_inverse_layer_idx else s

    @property
    def d_model(self) -> int:
        return self.n_embd

    @property
    def d_head(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def d_mlp(self) -> int:
        return self.n_inner or 4 * self.n_embd

    @property
    def d_rotary(self) -> int:
        """The channels of each head that the rotary embedding turns, the first ones: int(d_head · rotary_fraction),
        as transformers counts them (all of them by default)."""
        return int(self.d_head * self.rotary_fraction)

    @property
    def n_params(self) -> int:
        """Exact number of learned parameters (a tied unembedding counts once): the sum of `param_parts`."""
        return sum(self.param_parts().values())

    def param_parts(self) -> dict[str, int]:
        """Where the learned parameters live, in four parts that add up exactly to `n_params`:

        - ``embedding``: the token embedding (W_E), learned positions (W_pos) if any, and an untied unembedding
          (W_U, and its bias if any): the vocabulary's own matrices;
        - ``attention``: every layer's query, key, value and output weights and their biases;
        - ``mlp``: every layer's MLP weights (gate, in, out) and their biases;
        - ``other``: the normalisations' gains and biases (each layer's two and the final one).

        Each architecture counts its own: its module's `param_parts`, which llmviz.core.arch puts in PARAM_PARTS under
        the architecture's name. The architectures read ModelConfig, so ModelConfig imports none of them; the table is
        filled whenever any part of llmviz is imported (the package's __init__ imports the graph, which imports the
        architectures)."""
        if self.arch not in PARAM_PARTS:
            raise ValueError(f"unknown architecture {got(self.arch)}: llmviz has {', '.join(PARAM_PARTS) or 'none loaded'}")
        return PARAM_PARTS[self.arch](self)

    def kv_cache_bytes(self, positions: int) -> int:
        """Memory of a KV cache over `positions`: 2 · n_layer · n_kv_head · d_head · positions · 4 bytes (float32)."""
        return 2 * self.n_layer * self.kv_heads * self.d_head * positions * 4

    def axis_sizes(self) -> dict[str, int]:
        """The size of every named axis except `pos`, which depends on the input."""
        sizes = {
            "d_model": self.d_model,
            "head": self.n_head,
            "kv_head": self.kv_heads,
            "d_head": self.d_head,
            "d_mlp": self.d_mlp,
            "vocab": self.vocab_size,
            "n_ctx": self.n_ctx,
        }
        if self.image_side:  # an image classifier's axes (arch "mlp")
            sizes.update(pixel=self.image_side ** 2, unit1=self.n_embd, unit2=self.d_mlp, **{"class": self.vocab_size})
        if self.input_size:  # a neuron's (arch "neuron"): its input's numbers and its one output
            sizes.update(feature=self.input_size, neuron=1)
        return sizes

    @property
    def classifier(self) -> bool:
        """It reads numbers (an image, or a point) and says which class they are; no tokens, no next token."""
        return bool(self.image_side or self.input_size)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(d_head=self.d_head, d_mlp=self.d_mlp, n_params=self.n_params)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a config is a JSON object, not a {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


# Each architecture's parameter count by part, by its name (a config's `arch`): its module's `param_parts`, put here
# by llmviz.core.arch (see ModelConfig.param_parts).
PARAM_PARTS: dict[str, Callable[[ModelConfig], dict[str, int]]] = {}

_GPT2: dict[str, Any] = dict(vocab_size=50257, n_ctx=1024, layer_norm_eps=1e-5)

PRESETS: dict[str, ModelConfig] = {
    c.name: c
    for c in [
        ModelConfig(
            "nano-gpt", n_layer=3, n_head=3, n_embd=48, vocab_size=3, n_ctx=11,
            tied_unembed=False, example="CBABBC", task="six letters from A, B, C; the model sorts them",
            task_tokens=6, answer_tokens=6,
            description="minGPT's gpt-nano trained to sort six tokens from {A, B, C}",
        ),
        ModelConfig("gpt2", 12, 12, 768, **_GPT2, description="GPT-2 small (OpenAI, 2019)"),
        ModelConfig("gpt2-medium", 24, 16, 1024, **_GPT2, description="GPT-2 medium"),
        ModelConfig("gpt2-large", 36, 20, 1280, **_GPT2, description="GPT-2 large"),
        ModelConfig("gpt2-xl", 48, 25, 1600, **_GPT2, description="GPT-2 XL, the largest GPT-2"),
        ModelConfig(
            "gpt3", 96, 96, 12288, vocab_size=50257, n_ctx=2048,
            description="GPT-3 175B (OpenAI, 2020): structure only, its weights were never released",
        ),
        ModelConfig(
            "smollm-135m", 30, 9, 576, vocab_size=49152, n_ctx=2048, arch="llama", norm="rms", mlp="gated", n_kv_head=3,
            n_inner=1536, bias=False, activation="silu", layer_norm_eps=1e-5, rope_theta=10000.0, tied_unembed=True,
            description="SmolLM-135M's shape (Hugging Face, 2024): a Llama with grouped-query attention; structure only "
                        "(its folder loads with weights)",
        ),
    ]
}
