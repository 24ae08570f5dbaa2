"""Every op the model graph names, each one object (see base.Op): formula, numpy forward, label (its hover
explanation is the page's: frontend/src/explain.ts).

    from llmviz.core.ops import OPS
    OPS["softmax"].formula          # 'exp(x − m) / s'
    OPS["softmax"](x, m, s)         # the forward pass's numbers
"""

from __future__ import annotations

from . import activations, attention, embed, linear, norm, softmax
from .base import Op, fmt
from .rows import by_rows

OPS: dict[str, Op] = {op.name: op for module in (embed, norm, linear, attention, softmax, activations)
                      for op in vars(module).values() if isinstance(op, Op)}

__all__ = ["OPS", "Op", "by_rows", "fmt"]
