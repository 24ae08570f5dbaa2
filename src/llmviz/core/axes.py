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
    "pixel": ("X", "pixel of the input image, row by row", "#495057"),
    "unit1": ("U1", "hidden unit of the first layer", "#862e9c"),
    "unit2": ("U2", "hidden unit of the second layer", "#e64980"),
    "class": ("K", "class (a digit, 0 to 9)", "#0b7285"),
    "feature": ("F", "number the neuron reads (a coordinate of the point)", "#5f3dc4"),
    "neuron": ("Z", "the neuron's one output", "#c92a2a"),
}
# Axes whose indices have names: a position is a token of the input, a vocabulary entry a token string (a class: its
# digit).
NAMED_BY = {"pos": "input", "key_pos": "input", "past_pos": "input", "vocab": "vocabulary",
            "class": "vocabulary"}
