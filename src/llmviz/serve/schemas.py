"""Every request and response body of the API, declared once. FastAPI checks requests against them and writes
them into /openapi.json; the front-end's types (frontend/src/api-schema.ts) are generated from that schema when
the front-end is built, so the page reads what the server sends under the same names.

Binary answers (/api/trace, /api/attention, /api/scene) are safetensors bytes; the scene's JSON metadata is
`SceneInfo`, added to the schema's components (see server.openapi_with_scene).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from ..core.sampling import Sampling
from ..views.branches import MAX_DEPTH, MAX_K, MAX_NODES

MAX_PATTERNS = 256  # tensor names or patterns one trace request may give


# Requests


class StrictBody(BaseModel):
    """A request body: JSON types as declared (no "1" for 1, no 1.0 for 1, no "yes" for true), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class PromptRequest(StrictBody):
    model: str = Field("nano-gpt", examples=["nano-gpt"])
    text: str | None = Field(None, max_length=20_000, examples=["CBABBC"])
    tokens: Sequence[float] | None = Field(None, max_length=10_000, description=(
        "token ids instead of text (whole numbers; a classifier's input: its numbers, an image's pixels or a point's "
        "coordinates)"))

    @model_validator(mode="after")
    def one_of_text_or_tokens(self):
        if (self.text is None) == (self.tokens is None):
            raise ValueError("give exactly one of 'text' or 'tokens'")
        return self

    @property
    def prompt(self):
        return self.text if self.text is not None else self.tokens


class SceneRequest(StrictBody):
    model: str | None = Field(None, examples=["nano-gpt"], description="default: the server's first model")
    text: str | None = Field(None, max_length=20_000, examples=["CBABBC"])
    tokens: list[float] | None = Field(None, max_length=10_000, description="as PromptRequest's")
    n_pos: int | None = Field(None, ge=1, le=4096, description="positions to lay out for a structure-only model")
    heads: Literal["side", "stack"] = Field("side", description="a tensor's heads side by side, or stacked in depth")
    tower: bool = Field(False, description="the layers in one column, each MLP below its attention (the scale view "
                                           "stands models side by side as towers); default: the model's own "
                                           "arrangement, about as wide as a screen")
    past: int | None = Field(None, ge=1, le=100_000, description="a generation step: the last tokens computed on a "
                                                                 "KV cache of the first `past` (the KV-cache view)")
    edits: list[EditRequest] = Field(default_factory=list, max_length=64,
                                     description="interventions (as /api/intervene's): the scene is the edited pass, "
                                                 "with a second atlas `change` (edited − clean)")
    gradients: bool = Field(False, description="also a second atlas `grad`: the gradient of the next-token loss "
                                               "with respect to every cell (Model.gradients)")
    quant_error: bool = Field(False, description="a quantized model's scene (nano-gpt:q4_0), also a second atlas "
                                                 "`error`: every stored weight cell's stored − original (0 elsewhere)")

    @model_validator(mode="after")
    def not_both(self):
        if self.text is not None and self.tokens is not None:
            raise ValueError("give at most one of 'text' or 'tokens'")
        if self.edits and self.past is not None:
            raise ValueError("edits are made on a whole pass: give 'edits' or 'past', not both")
        if self.gradients and (self.edits or self.past is not None):
            raise ValueError("gradients are of a whole, clean pass: give 'gradients' without 'edits' or 'past'")
        if self.quant_error and (self.edits or self.past is not None or self.gradients):
            raise ValueError("the quantization error is shown on a whole, clean pass: give 'quant_error' alone")
        return self


class CellSlice(StrictBody):
    tensor: str = Field(examples=["blocks.0.attn.hook_pattern"])
    at: dict[str, int] = Field(default_factory=dict, description="the axes fixed, by name; the others come whole")


class WeightCell(StrictBody):
    tensor: str = Field(examples=["blocks.0.mlp.W_in"])
    index: list[int] = Field(max_length=8, description="the cell's index, in the weight's axes")


class CellsRequest(PromptRequest):
    past: int | None = Field(None, ge=1, le=100_000, description="a generation step's pass (see /api/scene)")
    slices: list[CellSlice] = Field(default_factory=list, max_length=64)
    stored: list[WeightCell] = Field(default_factory=list, max_length=64,
                                     description="weight cells whose stored form is asked for (a quantized model's)")
    edits: list[EditRequest] = Field(default_factory=list, max_length=64, description="the edited pass's numbers "
                                                                                      "(see /api/scene)")

    @model_validator(mode="after")
    def whole_pass(self):
        if self.edits and self.past is not None:
            raise ValueError("edits are made on a whole pass: give 'edits' or 'past', not both")
        return self


class LensRequest(PromptRequest):
    k: int = Field(5, ge=1, le=20, description="how many tokens to keep at each layer and position")


class BranchesRequest(PromptRequest):
    k: int = Field(3, ge=1, le=MAX_K, description="children per node: the k most probable next tokens")
    depth: int = Field(1, ge=1, le=MAX_DEPTH, description="levels below the input")
    max_nodes: int = Field(200, ge=1, le=MAX_NODES, description="at most this many nodes")


class TraceRequest(PromptRequest):
    include_weights: bool = Field(False, description="also send every weight tensor")
    tensors: list[str] | None = Field(None, max_length=MAX_PATTERNS, examples=[["blocks.0.attn.*", "probs"]],
                                      description="only these tensors: names, or patterns with * and ?")


class SetValue(StrictBody):
    value: float = Field(allow_inf_nan=False, description="set the cells to this number")


class SetScale(StrictBody):
    scale: float = Field(allow_inf_nan=False, description="multiply the cells by this factor")


class SetFromText(StrictBody):
    from_text: str = Field(max_length=20_000, description="activation patching: the cells' numbers in the clean pass "
                                                          "of this text, which must have as many tokens as the input")


class SetFromTokens(StrictBody):
    from_tokens: list[int] = Field(max_length=10_000, description="activation patching, from these token ids")


class EditRequest(StrictBody):
    """One intervention (core/edits.py): set some cells of one tensor right after it is computed."""

    tensor: str = Field(examples=["blocks.0.attn.hook_z"], description="a tensor of the model's graph (an activation)")
    where: dict[str, int | Annotated[list[int], Field(min_length=2, max_length=2)]] = Field(
        default_factory=dict, examples=[{"head": 1}, {"pos": [0, 2]}],
        description="the cells, by the tensor's axis names: an index or [start, end], both inclusive; an axis not "
                    "named is all of it")
    set: Annotated[Annotated[Literal["zero", "mean"], Tag("word")] | Annotated[SetValue, Tag("value")]
                   | Annotated[SetScale, Tag("scale")] | Annotated[SetFromText, Tag("from_text")]
                   | Annotated[SetFromTokens, Tag("from_tokens")],
                   Discriminator(lambda v: _set_form(v), custom_error_type="set",
                                 custom_error_message=SET_MESSAGE)] = Field(
        examples=["zero"], description="'zero'; 'mean' (the mean over this input's positions); {value}; {scale}; "
                                       "{from_text} or {from_tokens} (activation patching)")


SET_MESSAGE = ("set must be 'zero', 'mean', {\"value\": x}, {\"scale\": k}, {\"from_text\": \"...\"} or "
               "{\"from_tokens\": [...]}")


def _set_form(v) -> str | None:
    """Which form of `set` a value is (None: none of them), so that an error names just that form's problem."""
    if isinstance(v, str):
        return "word"
    if isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("value", "scale", "from_text", "from_tokens"):
        return next(iter(v))
    if isinstance(v, BaseModel):
        return next(iter(type(v).model_fields))
    return None


class InterveneRequest(PromptRequest):
    edits: list[EditRequest] = Field(max_length=64, description="made in this order, each right after its tensor is "
                                                                "computed")


Format = Literal["f32", "f16", "bf16", "int8", "q8_0", "q4_0"]  # core/quant.FORMATS (tests/test_compare.py)


class CompareRequest(PromptRequest):
    reference: Format = Field("f32", description="the format the other is measured against")
    other: Format = Field("q4_0", description="the format compared with it")
    heads: Literal["side", "stack"] = Field("side", description="the scene's (/api/compare/scene): as /api/scene's")


class AttributionRequest(PromptRequest):
    position: int | None = Field(None, description="the position whose prediction is split; default: the last")
    token: int | None = Field(None, description="the token id whose logit is split; default: the most probable there")


class PatchingRequest(StrictBody):
    model: str = Field("nano-gpt", examples=["nano-gpt"])
    clean: Annotated[str, Field(max_length=20_000)] | Annotated[list[int], Field(max_length=10_000)] = Field(
        examples=["CBABBCAB"], description="the clean input: a text or token ids")
    corrupted: Annotated[str, Field(max_length=20_000)] | Annotated[list[int], Field(max_length=10_000)] | None = Field(
        None, examples=["CBCBBCAB"], description="the corrupted input, as many tokens as the clean one; default: the "
                                                 "clean one with the one token changed that most lowers the target")
    position: int | None = Field(None, description="the target position; default: the last")
    token: int | None = Field(None, description="the target token id; default: the clean pass's prediction there")


class SamplingFields(BaseModel):
    temperature: float = Field(0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                               description="0 is greedy; close to 0 tends to greedy")
    top_k: int | None = Field(None, ge=1, description="keep the k most probable tokens")
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False,
                                description="keep the fewest tokens whose probabilities add up to top_p")
    min_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False,
                                description="keep tokens at least min_p times as probable as the most probable")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the same seed and settings give the same tokens")

    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_k, self.top_p, self.min_p)


class GenerateRequest(PromptRequest, SamplingFields):
    tokens: Sequence[int] | None = Field(None, max_length=10_000, description="token ids instead of text (generation "
                                                                         "writes tokens: a model that reads tokens)")
    max_new_tokens: int | None = Field(None, ge=0, le=256)


class SessionRequest(PromptRequest, SamplingFields):
    tokens: Sequence[int] | None = Field(None, max_length=10_000, description="as GenerateRequest's")


class StepRequest(StrictBody):
    count: int = Field(1, ge=1, le=256, description="tokens to generate; fewer when the context fills")


def allowed_range(field: str) -> str:
    """' (allowed: from 1 to 20)' for a numeric request field with both bounds (the same in every request that
    has it); '' otherwise."""
    ranges = set()
    todo: list[type[BaseModel]] = [StrictBody]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        info = cls.model_fields.get(field)
        if info is not None:
            bound = {k: getattr(m, k) for m in info.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)}
            ranges.add((bound.get("ge", bound.get("gt")), bound.get("le", bound.get("lt"))))
    (lo, hi), = ranges if len(ranges) == 1 else [(None, None)]
    return f" (allowed: from {lo} to {hi})" if lo is not None and hi is not None else ""


# Responses


class Reply(BaseModel):
    """A response body: every field declared (the tests validate real answers against these, so a field the
    server adds without declaring it here fails them)."""

    model_config = ConfigDict(extra="forbid")



class ModelConfig(Reply):
    """A model's shape (ModelConfig.to_dict): the sizes every model has, and its architecture's own fields."""

    model_config = ConfigDict(extra="allow")
    n_layer: int
    n_head: int
    n_embd: int
    vocab_size: int
    n_ctx: int
    d_head: int = Field(description="channels per head")
    task: str | None = None
    task_tokens: int | None = None
    answer_tokens: int | None = None
    image_side: int = Field(0, description="an image classifier's input: an image_side × image_side image, given as "
                                           "text as its pixels row by row (0: the model reads tokens)")
    input_size: int = Field(0, description="a point classifier's input (a neuron's): input_size numbers, given as text "
                                           "separated by spaces (0: the model reads tokens or an image)")


class Mistake(Reply):
    index: int = Field(description="the image's index in llmviz.data.digits() (1,437 on: held out)")
    label: int = Field(description="the digit it shows")
    predicted: int = Field(description="the digit the model says")
    prob: float = Field(description="the probability the model gives the digit it says")
    text: str = Field(description="its pixels as the model's input text, row by row")


class Mistakes(Reply):
    model: str
    tested: int = Field(description="the held-out images scored")
    accuracy: float = Field(description="the share of them the model classifies right")
    mistakes: list[Mistake]


class Line(Reply):
    w: list[float] = Field(description="the neuron's weights W, one per input number")
    b: float = Field(description="its bias: the line is W[0] x₁ + W[1] x₂ + b = 0")


class NextWeights(Line):
    name: str = Field(description="the model name of the neuron with these weights (its weights clipped to ±limit)")


class Decision(Reply):
    model: str
    base: str = Field(description="the served neuron whose weights a learner's name sets (`<base>~W…,b`)")
    points: list[list[float]] = Field(description="the task's points, each its coordinates (x₁, x₂)")
    labels: list[int] = Field(description="each point's class, 0 or 1")
    probs: list[float] = Field(description="each point's σ(z): the probability the neuron gives class 1")
    line: Line
    loss: float = Field(description="the mean binary cross-entropy over the points: −log of each one's class's probability")
    accuracy: float = Field(description="the share of the points on their class's side of the line")
    grad: Line = Field(description="the loss's gradient with respect to W and b")
    lr: float = Field(description="the learning rate of `next`")
    next: NextWeights = Field(description="the weights after one step of gradient descent: W − lr ∂loss/∂W, b − lr ∂loss/∂b")
    limit: float = Field(description="a learner's weights go from −limit to limit")
    extent: float = Field(description="the plot shows x₁ and x₂ from −extent to extent")


class Precision(Reply):
    format: str = Field(examples=["q4_0"])
    bits: int = Field(description="bits per weight, before any scale")
    model: str = Field(description="the model's name in this format (nano-gpt:q4_0)")


# The page's features a model may not offer (ModelInfo.cannot): the Gradients view, Generate, an edit, an embedding's
# map, and the Across-layers tabs that need the weights or llmviz's own pass.
Feature = Literal["gradients", "generate", "edit", "embedding_map", "lens", "branches", "attribution", "patching"]


class ModelInfo(Reply):
    name: str
    description: str
    example: str | None = Field(None, description="an input to start with")
    n_params: int = Field(description="exact number of learned parameters")
    param_parts: dict[str, int] = Field(description="where the parameters live: embedding, attention, mlp and other "
                                                    "(the norms), adding up to n_params")
    has_weights: bool = Field(description="false: structure only, no numbers to show")
    config: ModelConfig
    source: str
    precisions: list[Precision] = Field(default_factory=list, description="the formats its weights can be stored in "
                                        "(core/quant.py), f32 (the model itself) first; none for a model that cannot")
    engine: Literal["numpy", "nnsight"] = Field("numpy", description="what computes its passes: llmviz's numpy pass, "
                                                "or nnsight (which returns part of the graph, and no weights)")
    engine_note: str | None = Field(None, description="what a learner should know first about how it is run (shown under "
                                    "its title): nnsight's grey blocks; none for llmviz's own pass")
    cannot: dict[Feature, str] = Field(default_factory=dict, description="the page's features it cannot offer, each "
                                       "with why (the control is hidden or disabled, and says so): none for most models")


class AxisInfo(Reply):
    label: str = Field(description="its letter in formulas")
    description: str
    color: str = Field(description="its colour, the same everywhere")
    size: int | None = Field(None, description="null: it depends on the input")
    named_by: str | None = Field(None, description="'input' or 'vocabulary': its indices stand for tokens")


class OpInfo(Reply):
    formula: str
    description: str
    symbol: str | None = None


class TensorInfo(Reply):
    name: str
    title: str
    label: str = Field(description="its short label in the view")
    kind: Literal["input", "weight", "activation", "aggregate"]
    group: str
    layer: int | None
    axes: list[str]
    shape: list[int | None] = Field(description="null where the size depends on the input")
    op: str | None
    inputs: list[str]
    attrs: dict[str, Any]


class GraphJson(Reply):
    model: ModelConfig
    past: int = Field(description="a generation step's graph: positions whose keys and values come from the KV cache")
    axes: dict[str, AxisInfo]
    ops: dict[str, OpInfo]
    tensors: list[TensorInfo]
    tokenizer: dict[str, Any] | None = None


class Vocab(Reply):
    tokens: list[str] = Field(description="each vocabulary entry's token, as the view shows it")


class LensTop(Reply):
    id: int
    token: str
    prob: float


class Lens(Reply):
    layers: list[str] = Field(description="the residual stream's tensors it decodes, in order")
    labels: list[str]
    tokens: list[int]
    token_strs: list[str]
    top: list[list[list[LensTop]]] = Field(description="[layer][position]: the k most probable tokens")


class MapPoint(Reply):
    id: int = Field(description="the row: a token id, or a position")
    label: str = Field(description="the token as the view shows it, or the position's index")
    x: float = Field(description="along the first principal component")
    y: float = Field(description="along the second")
    vector: list[float] = Field(description="the row's numbers (its first 64, for a longer row)")
    norm: float = Field(description="the row's length, all its numbers counted")


class MatrixMap(Reply):
    which: Literal["tokens", "positions"]
    tensor: str = Field(examples=["embed.W_E"])
    title: str
    label: str = Field(description="its short label in the view")
    rows: int = Field(description="rows of the matrix (points shown: len(points), the lowest ids)")
    d_model: int
    variance: tuple[float, float] = Field(description="the share of the rows' variance along PC1 and along PC2")
    scale: float = Field(description="the matrix's largest |value| (its block's colour scale)")
    note: str | None = Field(description="what is left out: rows past the cap, numbers past the first 64")
    points: list[MapPoint]


class EmbeddingMap(Reply):
    """The rows of each embedding matrix on their first two principal components (views/embedmap.py)."""

    model: str
    maps: list[MatrixMap] = Field(description="the token embedding, then the position embedding if it is learned")
    note: str | None = Field(description="a model with rotary positions: why it has no position map")


class EditInfo(Reply):
    tensor: str
    where: dict[str, tuple[int, int]] = Field(description="every axis of the tensor: the [first, last] cells set")
    set: Any = Field(description="what the cells were set to, as in the request (from_tokens for a patch by ids)")
    cells: int = Field(description="how many numbers the edit set")
    label: str = Field(description="what it does, in words: \"zero blocks.0.attn.hook_z at head 1\"")


class InterveneResponse(Reply):
    model: str
    tokens: list[int]
    token_strs: list[str]
    edits: list[EditInfo] = Field(description="where each edit was made")
    probs: list[list[float]] = Field(description="[pos][vocab]: the edited pass's next-token probabilities")
    clean_probs: list[list[float]] = Field(description="[pos][vocab]: the clean pass's")
    predicted: list[str] = Field(description="the edited pass's most probable next token after each position")
    clean_predicted: list[str]
    changed: dict[str, float] = Field(description="every computed tensor: the largest |edited - clean| of its "
                                                  "numbers (0 upstream of the edits)")


class Branch(Reply):
    id: int
    token: str
    prob: float = Field(description="the model's probability of this token after its parent's path")
    text: str
    children: list[Branch]


class BranchRoot(Reply):
    tokens: list[int]
    token_strs: list[str]
    text: str
    children: list[Branch]


class GeneratedView(Reply):
    """Generation's next step: `text` (the input and its prediction) computed on a KV cache of the input's `past`
    positions."""

    kind: Literal["generated"]
    input: str
    text: str
    past: int


class ScaleView(Reply):
    kind: Literal["scale"]


class GradientsView(Reply):
    """The input's pass coloured by the gradient of its next-token loss (a scene asked for with `gradients`)."""

    kind: Literal["gradients"]


class Region(Reply):
    """Cells of a tensor: a range [first, last] on each axis; `role` says what they are to the step or the op."""

    tensor: str
    ranges: dict[str, tuple[int, int]]
    role: str


class FrameAction(Reply):
    type: Literal["frame"]
    tensors: list[str]


class HighlightAction(Reply):
    type: Literal["highlight"]
    regions: list[Region]


class RevealAction(Reply):
    type: Literal["reveal"]
    tensor: str
    along: Literal["rows", "cols"]


class CellAction(Reply):
    """A cell the step explains (the page explains it, as on hover): a dot on it, or its tooltip open."""

    type: Literal["dot", "tooltip"]
    cell: Region
    index: list[int] = Field(description="one per axis of the cell's tensor")


class MaskAction(Reply):
    type: Literal["mask"]
    tensor: str


class AddAction(Reply):
    type: Literal["add"]
    tensor: str
    inputs: list[str]


class TravelAction(Reply):
    type: Literal["travel"]
    token: str
    from_: Region = Field(alias="from")
    to: Region


class CodeAction(Reply):
    type: Literal["code"]
    op: str
    plain: str | None = Field(description="the op for one example in plain numpy (null: only its real source)")
    source: str
    file: str


class Choice(Reply):
    i: int
    name: str


class GuessAction(Reply):
    type: Literal["guess"]
    row: Region
    hides: list[Region] = Field(description="rows that would give the answer away, covered until the guess")
    answer: int
    axis: str
    choices: list[Choice]


class TemperatureEntry(Reply):
    i: int
    name: str
    x: float
    p: list[float]
    percent: list[str]


class TemperatureRest(Reply):
    p: list[float]
    percent: list[str]


class TemperatureAction(Reply):
    """A temperature slider's data, worked out from one row's logits: each entry's probability (and as the readout
    prints it) at each temperature; rest: the other tokens' share at each (null: none left out)."""

    type: Literal["temperature"]
    row: Region
    of: str
    n: int
    temperatures: list[float]
    start: int
    entries: list[TemperatureEntry]
    rest: TemperatureRest | None


class SoftmaxEntry(Reply):
    i: int
    name: str
    x: float
    exp: float
    p: float


class SoftmaxAction(Reply):
    type: Literal["softmax"]
    row: Region
    of: str
    n: int
    max: float
    sum: float
    entries: list[SoftmaxEntry]


class GenerateAction(Reply):
    type: Literal["generate"]
    token: str


class OpenAction(Reply):
    type: Literal["open"]
    tab: Literal["lens", "attention", "map"] = Field(description="an Across-layers tab, or the embedding map")


class ModelAction(Reply):
    type: Literal["model"]
    name: str


class TableAction(Reply):
    type: Literal["table"]
    models: list[str]


class EditReadout(Reply):
    """What the readout shows at one position: the top token and its probability."""

    token: str
    id: int
    prob: float
    percent: str = Field(description="as the readout prints it (sampling.percent)")


class EditAction(Reply):
    """A one-click intervention (`@edit`): edits to make to the view's pass, and the readout at `pos` without and
    with them."""

    type: Literal["edit"]
    label: str
    edits: list[EditRequest] = Field(description="in /api/intervene's form, as core/edits.Edit.to_json gives them")
    pos: int = Field(description="the position the readout is read at (the step's claim is about it)")
    before: EditReadout
    after: EditReadout


WalkAction = Annotated[
    FrameAction | HighlightAction | RevealAction | CellAction | MaskAction | AddAction | TravelAction | CodeAction
    | GuessAction | TemperatureAction | SoftmaxAction | GenerateAction | OpenAction | ModelAction | TableAction
    | EditAction,
    Field(discriminator="type")]


class WalkStep(Reply):
    title: str
    html: str
    actions: list[WalkAction]
    tensors: list[str]
    view: Annotated[GeneratedView | ScaleView | GradientsView, Field(discriminator="kind")] | None = None


class WalkChapter(Reply):
    number: int
    title: str
    stage: str
    file: str
    steps: list[WalkStep]


class Walk(Reply):
    model: str
    input: str | None
    tokens: list[int] | None
    note: str
    chapters: list[WalkChapter]


# The learning path's steps (GET /api/learning-path, views/learning_steps.py)


class LearningPathStep(Reply):
    model: str = Field(description="the bundled model the step shows")
    title: str
    learn: str = Field(description="one line: what the learner takes away")
    picture: str = Field(description="its thumbnail, relative to the page (a file of the served page, not of an export)")
    served: bool = Field(description="whether this server has the model, with weights (false: the step is to come)")
    start: list[int] | None = Field(description="[chapter, step] from 1 where its walkthrough starts (null: no "
                                                "chapter for it yet, or not served)")
    end: list[int] | None = Field(description="[chapter, step]: its walkthrough's last step")


class LearningPath(Reply):
    steps: list[LearningPathStep] = Field(description="in order, from a single neuron to a whole GPT")


class TaskProgress(Reply):
    """How far a computation the page named (X-Llmviz-Task) has got: "layer 3 of 16"."""

    done: int = Field(description="units of `what` done (0 before the first report)")
    total: int = Field(description="units of `what` in all (0 before the first report)")
    what: str = Field(description='what is counted: "layer", "weights", ...; empty before the first report')
    waiting: bool = Field(description="still waiting for a free worker")
    seconds: float = Field(description="since the request arrived")


class TasksProgress(Reply):
    tasks: dict[str, TaskProgress] = Field(description="each of the computations asked about that is waiting or running, "
                                                       "by name (one that has ended, or never was, is absent)")


class CellsSlice(Reply):
    tensor: str
    at: dict[str, int]
    axes: list[str] = Field(description="the axes left, in the tensor's order")
    shape: list[int]
    values: str = Field(description="the numbers, little-endian float32, base64")


class StoredCell(Reply):
    """One weight cell as its model stores it (core/quant.py's Stored; views/provenance.stored_cell)."""

    tensor: str
    index: list[int]
    precision: str = Field(description="the model's format (f32: the model itself)")
    fmt: str = Field(description="the format this weight is stored in: the model's, f32 for a weight it keeps in "
                                 "float32, f16 for a matrix whose rows blocks of 32 cannot cut")
    row: int | None = Field(description="the numbers one output reads (its row, as ggml lays the matrix out)")
    inputs: list[str] = Field(description="the weight's input axes: its rows run along them")
    value: float | None = Field(description="the number the pass computes with (dequantized)")
    original: float | None = Field(description="the float32 number before it was stored")
    error: float | None = Field(description="value − original")
    code: int | None = Field(description="the stored integer (int8, q8_0: −127 … 127; q4_0, q4_1: 0 … 15)")
    scale: float | None = Field(description="its block's scale d (int8: its output channel's)")
    min: float | None = Field(None, description="q4_1 (a GGUF file's): its block's minimum m, w = d · code + m")
    from_file: bool = Field(False, description="stored so in the model's file (GGUF): there is no float original")
    block: int | None = Field(description="its block (int8: its output channel), numbered row by row")
    bits: str | None = Field(description="f16, bf16: the stored 16 bits, in hexadecimal")
    regions: list[dict[str, tuple[int, int]]] = Field(description="the cells of its block (int8: its channel), as "
                                                                  "ranges [first, last] by axis")


class CellsResponse(Reply):
    shapes: dict[str, list[int]] = Field(description="every tensor of this pass, by name")
    slices: list[CellsSlice]
    stored: list[StoredCell] = Field(default_factory=list, description="the weight cells of the request's `stored`")


# The chain rule of one cell's gradient (POST /api/chain, views/chainrule.py)


class ChainRequest(PromptRequest):
    tensor: str = Field(examples=["blocks.0.mlp.hook_pre"], description="any tensor of the graph: activation or weight")
    index: list[int] = Field(max_length=8, examples=[[3, 17]], description="the cell: one index per axis")


class ChainRow(Reply):
    label: str
    value: float


class ChainTerm(Reply):
    at: dict[str, int] = Field(description="the reader's result cell, on the axes the terms run over")
    where: str = Field(description="that cell as the view names it (T 3 'B')")
    g: float = Field(description="upstream: the loss's gradient at that cell")
    d: float = Field(description="local: how much that cell moves with this number")
    product: float


class ChainTerms(Reply):
    over: list[str] = Field(description="the labels of the axes the terms run over")
    count: int
    shown: list[ChainTerm] = Field(description="the terms of largest magnitude")
    rest: float = Field(description="the sum of the other terms")


class ChainPart(Reply):
    reader: str = Field(description="the tensor computed from this number ('loss': the loss itself, for a logit)")
    title: str
    op: str | None
    via: list[str] = Field(description="the reader's other inputs, computed from this number by the steps before it "
                                       "(a softmax's max and sum): taken in by its formula")
    tied: str | None = Field(description="a tied weight read in this weight's place (the same numbers)")
    formula: str = Field(description="the backward's formula for this input (g · GELU′(x), p · (g − Σ p·g))")
    upstream: str = Field(description="what g is")
    text: str = Field(description="the formula with the pass's numbers")
    rows: list[ChainRow] = Field(description="the numbers the formula reads")
    terms: ChainTerms | None = Field(description="upstream × local at each cell the reader computed from this number "
                                                 "(null: one cell, in `text`)")
    value: float = Field(description="this reader's part of the gradient")
    size: float = Field(description="Σ |term|")
    regions: list[Region] = Field(description="the cells of the reader's result computed from this number (lit)")


class ChainRule(Reply):
    tensor: str
    title: str
    index: list[int]
    where: str
    symbol: str = Field(description="the cell's name in the formulas: w for a weight's, x for any other")
    loss: float = Field(description="the mean next-token cross-entropy over the positions scored")
    scored: int = Field(description="how many positions the loss averages over")
    gradient: float | None = Field(description="∂loss/∂(this number) as the backward pass computes it (float32); "
                                               "null: the loss does not depend on it")
    parts: list[ChainPart] = Field(description="one per op that reads this number (and the loss, for a logit)")
    total: float | None = Field(description="the parts added up (float64)")
    note: str | None


class Candidate(Reply):
    id: int
    token: str
    prob: float
    percent: str = Field(description="the probability as the page shows it")


class Stage(Reply):
    name: str = Field(description="probabilities, ÷ temperature T, top-k k, top-p p, min-p p, renormalised (or greedy)")
    kept: int = Field(description="how many tokens this stage keeps")
    top: list[Candidate] = Field(description="its most probable tokens")


class Step(Reply):
    id: int
    token: str
    prob: float = Field(description="the model's probability of the token")
    chosen_prob: float = Field(description="its probability after the sampling chain, which the draw used")
    u: float | None = Field(description="the uniform draw placed on the cumulative distribution; null when greedy")
    stages: list[Stage]
    position: int = Field(description="where the token goes in the sequence")


class GenerateResponse(Reply):
    prompt_tokens: list[int]
    tokens: list[int]
    token_strs: list[str]
    text: str
    probs: list[float] = Field(description="probability of each chosen token when it was chosen")
    steps: list[Step] = Field(description="each choice, with every stage of the sampling chain")


class CacheAtScale(Reply):
    model: str
    positions: int
    bytes: int


class CacheFacts(Reply):
    """The KV cache in numbers: its bytes now (2 · n_layer · n_head · d_head · positions · 4 bytes), at GPT-2's and
    GPT-3's full context, and the multiply-adds of the next step with the cache and without it."""

    positions: int
    bytes: int
    formula: str
    at_scale: list[CacheAtScale]
    step_multiply_adds: int
    full_multiply_adds: int


class SessionState(Reply):
    session: str
    model: str
    prompt_tokens: list[int]
    tokens: list[int] = Field(description="the prompt and every token generated so far")
    token_strs: list[str]
    text: str = Field(description="the generated tokens, decoded")
    view_text: str = Field(description="the input a view of the sequence shows: the tokens so far, at most a context "
                                       "(the pass that predicted the last token)")
    steps: list[Step] = Field(description="this request's steps (after a step), or every step so far")
    n_ctx: int
    done: bool = Field(description="the context is full: no further step")
    message: str | None = None
    cache: CacheFacts


# The scene's JSON (the metadata of POST /api/scene's safetensors answer)


class BlockInfo(Reply):
    tensor: str
    short: str = Field(description="its label in the view")
    title: str
    kind: Literal["input", "weight", "activation", "aggregate"]
    op: str | None
    group: str
    layer: int | None
    axes: tuple[str | None, str | None, str | None] = Field(description="the axes across, down and in depth")
    cols: int
    rows: int
    depth: int
    merged: bool
    residual: bool
    x: float
    y: float
    z: float
    z_step: float = Field(description="distance between heads stacked in depth")
    x_step: float = Field(description="distance between heads side by side")
    causal: bool = Field(description="a key after its query is masked: columns (keys) right of the diagonal")
    dims: list[tuple[str, int]] = Field(description="the tensor's axes, in its own order, with their sizes")
    tile: tuple[int, int] = Field(description="tensor cells per displayed cell, across and down")
    scale: float
    slabs: list[tuple[int, int, int, int]] | None = Field(description="atlas x, y, width, height per slab")
    fetched: bool = Field(True, description="false: the engine that ran the pass (nnsight) did not return this "
                                            "tensor; drawn as structure, with no numbers")
    map: Literal["tokens", "positions"] | None = Field(
        None, description="an embedding lookup's table: its rows have a map (GET /api/models/{name}/embedding-map)")
    wrap: int | None = Field(None, description="an image (an image classifier's input): the axis across laid row by "
                                               "row, this many cells a row, so cell (row, col) is index row × wrap + col")
    change: float | None = Field(None, description="an edited pass's scene: the largest |edited − clean| of the "
                                                   "block's displayed cells (0: unchanged)")
    grad: float | None = Field(None, description="a scene with gradients: the largest |∂loss/∂x| of the block's "
                                                 "displayed cells")
    error: float | None = Field(None, description="a scene with quantization errors: a stored weight's largest "
                                                  "|stored − original| of its displayed cells")


class Section(Reply):
    key: str
    title: str
    parent: str | None
    x0: float
    x1: float
    y0: float
    y1: float


class SceneModel(Reply):
    name: str
    n_params: int
    param_parts: dict[str, int] = Field(description="embedding, attention, mlp, other (the norms): adding up to n_params")
    has_weights: bool
    description: str
    config: ModelConfig
    engine: Literal["numpy", "nnsight"] = Field("numpy", description="what computed the pass: llmviz's numpy pass, or "
                                                                     "nnsight (which returns part of the graph)")


class Answer(Reply):
    """The greedy answer; after an input with part of the answer written, its first `written` tokens are that part."""

    ids: list[int]
    tokens: list[str]
    text: str
    probs: list[float]
    written: int | None = None


class Prediction(Reply):
    position: int
    top: list[Candidate]
    answer: Answer | None


class MaxDisplay(Reply):
    weight: float
    computed: float


class CompareSide(Reply):
    model: str = Field(description="the model's name in this format (nano-gpt:q4_0; f32: the model's own)")
    format: str
    bits: int
    prediction: Prediction | None
    predicted: list[str] = Field(description="the most probable next token at each position")


class LayerError(Reply):
    tensor: str = Field(examples=["blocks.0.hook_resid_post"])
    layer: int | None = Field(description="None: the embedding (the first layer's input)")
    label: str
    last: float = Field(description="‖other − reference‖ / ‖reference‖ over the model dimension, at the last position")
    mean: float = Field(description="the same, averaged over the positions")


class Comparison(Reply):
    model: str = Field(description="the reference pass's model name")
    tokens: list[int]
    token_strs: list[str]
    reference: CompareSide
    other: CompareSide
    layers: list[LayerError] = Field(description="the residual stream's relative error, layer by layer")
    same_answer: bool = Field(description="both passes' most probable next token after the input is the same")
    changed_positions: list[int] = Field(description="positions whose most probable next token differs")
    probs_tv: float = Field(description="total variation distance between the two next-token distributions")


class SceneInfo(Reply):
    model: SceneModel
    n_pos: int
    past: int = Field(description="a generation step's scene: positions whose keys and values came from the KV cache")
    axes: dict[str, AxisInfo]
    ops: dict[str, OpInfo]
    blocks: list[BlockInfo]
    links: list[tuple[int, int]]
    sections: list[Section]
    bounds: tuple[float, float, float, float]
    bands: list[tuple[float, float, float, float]] = Field(
        description="the residual stream's band down each column of layers: x0, top, x1, bottom")
    max_display: MaxDisplay
    tokens: list[int] | None = None
    token_strs: list[str] | None = None
    text: str | None = Field(None, description="the input (with a KV cache, the whole context) as a person reads it")
    predicted: list[str] | None = None
    axis_names: dict[str, list[str]] | None = Field(
        None, description="what each index of a named axis stands for (tokens)")
    prediction: Prediction | None = None
    context: list[int] | None = Field(None, description="a step's tokens, the cached ones first")
    not_fetched: list[str] | None = Field(None, description="the tensors the engine (nnsight) did not return: no "
                                                            "value, and no formula that reads them")
    edits: list[EditInfo] | None = Field(None, description="an edited pass's edits (the scene is that pass)")
    clean_prediction: Prediction | None = Field(None, description="an edited pass's: what the clean pass predicts")
    clean_predicted: list[str] | None = None
    loss: float | None = Field(None, description="a scene with gradients: the mean next-token cross-entropy over "
                                                 "positions 0 … T−2")
    quant_error: float | None = Field(None, description="a scene with quantization errors (`error` atlas): the "
                                                        "largest |stored − original| over the stored weights")
    compare: Comparison | None = Field(None, description="a comparison's scene (/api/compare/scene): the other "
                                                         "pass, its `change` atlas other − reference")


class AttributionPart(Reply):
    label: str = Field(examples=["L2 head 1"])
    kind: Literal["embed", "head", "mlp", "bias", "other"]
    layer: int | None
    head: int | None = Field(description="the head of `tensor` (hook_z), for a head's part")
    tensor: str = Field(description="the tensor (or bias weight) the part is, for the view to fly to")
    value: float = Field(description="its share of the logit")


class AttributionTop(Reply):
    id: int
    token: str
    prob: float
    logit: float


class NormInfo(Reply):
    tensor: str = Field(description="the final norm's scale tensor")
    scale: float = Field(description="its value at the position (σ, or the root mean square), frozen")
    centred: bool = Field(description="LayerNorm: each part is centred first; RMSNorm: not")


class Analysed(Reply):
    """One prediction an analysis is about: the token at a position of an input."""

    model: str
    tokens: list[int]
    token_strs: list[str]
    position: int
    token: int
    token_str: str


class Attribution(Analysed):
    logit: float = Field(description="the model's logit of the token at the position")
    prob: float
    total: float = Field(description="the parts' sum: the logit, to float tolerance")
    norm: NormInfo
    parts: list[AttributionPart] = Field(description="in layer order: embeddings, each layer's heads, attention "
                                                     "bias and MLP, then the final norm's and the unembedding's biases")
    top: list[AttributionTop] = Field(description="the most probable tokens at the position")


class ResidSweep(Reply):
    tensors: list[str] = Field(description="each layer's hook_resid_pre, then the last hook_resid_post")
    labels: list[str]
    probs: list[list[float]] = Field(description="[row][position]: the target's probability with that cell patched")
    recovered: list[list[float | None]] = Field(description="(p - corrupted) / (clean - corrupted); null if equal")


class HeadSweep(Reply):
    tensors: list[str] = Field(description="each layer's hook_z")
    probs: list[list[float]] = Field(description="[layer][head]: with that head's hook_z (every position) patched")
    recovered: list[list[float | None]]


class Patching(Analysed):
    corrupted_tokens: list[int]
    corrupted_strs: list[str]
    corrupted_text: str
    clean_prob: float
    corrupted_prob: float
    resid: ResidSweep
    heads: HeadSweep


class NeuronContext(Reply):
    text: str = Field(description="a snippet of the training text")
    mark: int = Field(description="the index in `text` of the character where the neuron fired")
    activation: float = Field(description="hook_post there, the model reading `text` from its start to the mark")


class NeuronToken(Reply):
    id: int
    token: str
    effect: float = Field(description="logit change per unit of activation (direct effect, before the final σ)")


class Neuron(Reply):
    """What one MLP neuron does (views/neurons.py)."""

    model: str
    layer: int
    index: int
    tensor: str
    contexts: list[NeuronContext] | None = Field(description="where it fired most in the training text; null: "
                                                             "this model has none stored (contexts_note says why)")
    contexts_note: str
    boosted: list[NeuronToken]
    suppressed: list[NeuronToken]
    effect_note: str


class NeuronTensors(Reply):
    """Which tensors of a model have one entry per MLP neuron, along which axis."""

    model: str
    axis: str
    tensors: list[str]
    n_layer: int
    d_mlp: int
    contexts: bool = Field(description="whether the model has its neurons' top contexts stored")


# Training you can watch (routes/training.py): a run from random weights, its snapshots and when each head's pattern
# forms


class TrainingStart(StrictBody):
    model: str = Field("nano-gpt", examples=["nano-gpt"], description="a bundled model that can be trained")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="the initial weights' and the batches' seed; "
                                                                   "default: the task's")
    steps: int | None = Field(None, ge=1, le=100_000, description="default: the task's")
    every: int | None = Field(None, ge=1, le=100_000, description="a snapshot every this many steps; default: about "
                                                                  "100 over the run")
    speed: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False,
                                description="at most this many steps per second; default: as fast as it goes")


class TrainingControl(StrictBody):
    action: Literal["pause", "resume", "step", "stop", "speed"]
    speed: float | None = Field(None, gt=0, le=1000, allow_inf_nan=False,
                                description="with action speed: at most this many steps per second (null: full speed)")


class TrainingSetting(Reply):
    label: str
    value: str


class Trainable(Reply):
    name: str
    offline: bool = Field(description="its data is at hand without a download (the view trains only these)")
    settings: list[TrainingSetting]
    probe: str = Field(description="the input whose attention patterns are watched (\"\": it has no attention)")
    about: str = Field(description="what it learns and how it is scored, in a learner's words")


class TrainingSnapshot(Reply):
    step: int
    name: str = Field(description="its model name, for any view: <model>@<step>")
    loss: float | None = Field(description="the loss of the step that led here (its batch, before its update)")
    lr: float | None
    metrics: dict[str, float] = Field(description="the task's scores of these weights (nano-gpt: accuracy on all "
                                                  "729 inputs)")


class HeadFormation(Reply):
    layer: int
    head: int
    label: str = Field(description="L0H2: layer 0, head 2")
    step: int | None = Field(description="the step its pattern formed at; null: still moving at the latest snapshot")
    pattern: str = Field(description="the tensor of its pattern")


class TrainingState(Reply):
    version: int = Field(description="bumps at every change: GET with since=version waits for the next one")
    status: Literal["idle", "running", "paused", "done", "stopped", "diverged", "failed"]
    message: str | None
    model: str | None
    seed: int | None
    steps: int = Field(description="the steps the run is to take")
    steps_done: int
    every: int
    speed: float | None = Field(description="at most this many steps per second; null: full speed")
    settings: list[TrainingSetting]
    probe: str | None
    loss_steps: list[int] = Field(description="the steps of `losses` (every step's, or every k-th and the last)")
    losses: list[float] = Field(description="each of those steps' loss: its batch's, before its update")
    snapshots: list[TrainingSnapshot]
    fractions: list[str] = Field(description="the metrics that are a share, drawn from 0 to 100 %")
    formation: list[HeadFormation]
    formation_rule: str
    trainable: list[Trainable]


class Fallback(Reply):
    weight: str
    stored_as: str = Field(description="the format it is stored in instead (f16)")
    why: str = Field(description="the reason, as a learner reads it")


class PrecisionRow(Reply):
    """One format of a precision table (views/precision.py)."""

    format: str
    bytes: int = Field(description="the weights as stored (each quantized weight's bytes; the rest 4 per number; a "
                                   "tied weight once)")
    float32_bytes: int = Field(description="of those, the weights kept as float32: position embedding, biases, norms")
    bits_per_weight: float = Field(description="8 × bytes over the number of weights")
    size: float = Field(description="bytes over the float32 model's")
    weight_rms: float = Field(description="RMS of stored − original over every quantized weight")
    weight_max: float = Field(description="the largest |stored − original|")
    weight_rel_rms: float = Field(description="weight_rms over the RMS of the original quantized weights")
    logits_max: float | None = Field(description="the largest |Δ logit| against the float32 pass, over every position")
    top_prob: float | None = Field(description="the probability of the float32 pass's top token (top_token) at the "
                                               "last position")
    top_same: bool | None = Field(description="whether that token is still the most probable at the last position")
    agree: float | None = Field(description="the share of positions whose most probable token is the float32 pass's")
    pass_ms: float | None = Field(description="the time of a forward pass, in ms (see the table's `timing`)")
    refused: str | None = Field(description="why this format's pass could not be computed (null: it was)")
    fallback: list[Fallback] = Field(description="each matrix stored otherwise than the format asks, and why")


class PrecisionTable(Reply):
    model: str
    input: str = Field(description="the input the logits are compared on: the model's example")
    tokens: int
    top_token: str = Field(description="the float32 pass's most probable next token at the last position")
    formats: list[PrecisionRow] = Field(description="f32 first, then each format")
    timing: str = Field(description="how the pass times were measured, in words")


def json_safe(x):
    """JSON has no infinities: write them as the strings JavaScript's Number() reads back ("-Infinity")."""
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x
