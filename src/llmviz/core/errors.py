"""Errors a user can cause, each with a message that says what is allowed.

The server turns them into 4xx responses and the CLI into a one-line exit.
"""


class LlmvizError(ValueError):
    """Base class: bad input from the user, never a bug."""

    status = 422


class NotFound(LlmvizError):
    status = 404


class ModelNotFound(NotFound):
    pass


class InputTooLong(LlmvizError):
    status = 413


class NoWeights(LlmvizError):
    """The model is structure only: there are no numbers to compute."""

    status = 409


class NumericTrouble(LlmvizError):
    """A forward pass whose numbers left float32's range (an overflow, or an invalid operation such as inf − inf):
    the model's weights or its input drive it out of range. Refused rather than shown as NaN."""


class BadModelFile(LlmvizError):
    """A weights file that is corrupt, truncated or does not fit the model."""


class OverBudget(LlmvizError):
    """A request whose answer or working memory would be larger than the server allows one request."""

    status = 413


class Busy(LlmvizError):
    """Every worker is busy and the queue is full: try again shortly."""

    status = 503

    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class NotFetched(LlmvizError):
    """A tensor the engine that ran the pass did not return (the nnsight engine returns a subset of the graph)."""

    status = 409


class EngineCannot(LlmvizError):
    """What a model served by another engine (nnsight) cannot do: it needs the weights or llmviz's own pass."""

    status = 409
