"""The model itself: its configuration, its graph of named tensors, the ops that compute them, one module per
architecture, and the numpy forward pass. Nothing here imports from io, views, serve or training."""
