"""The named axes of every tensor: a short label, what the axis counts, and one colour used everywhere."""

# name -> (short label, what it counts, colour). One colour per axis, used everywhere.
AXES: dict[str, tuple[str, str, str]] = {
    "pos": ("T", "token position", "#2f9e44"),
    "key_pos": ("T'", "key position (the position attended to)", "#a0522d"),
    "past_pos": ("P", "cached position (computed at an earlier step)", "#d9a066"),
    "d_model": ("C", "residual-stream channel", "#1971c2"),
    "head": ("H", "attention head", "#e8590c"),
    "kv_head": ("G", "key-value head (shared by a group of query heads)", "#f08c00"),
    "d_head": ("A", "channel within one head", "#c2255c"),
    "d_mlp": ("4C", "MLP hidden unit", "#7048e8"),
    "vocab": ("V", "vocabulary entry", "#0c8599"),
    "n_ctx": ("N", "position in the context window", "#5c940d"),
}
# Axes whose indices have names: a position is a token of the input, a vocabulary entry a token string.
NAMED_BY = {"pos": "input", "key_pos": "input", "past_pos": "input", "vocab": "vocabulary"}
