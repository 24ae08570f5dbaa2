"""The API's routes, one module per concern: models (the list, a graph, the walkthrough), passes (a trace, the
scene, the numbers behind a cell), layers (across-layers panels: attention maps, the logit lens, the branch
tree), generation (one-shot and step by step), the learning path and the page."""
