"""Tiny random transformers models for the faithfulness tests, built offline (the hub is unreachable)."""

import torch
import transformers


def random_net(config_cls: str, model_cls: str, config: dict, seed: int = 0):
    """A transformers model of this config with random weights, in eval mode. Random init is near uniform: noise
    on every parameter makes clear argmaxes."""
    torch.manual_seed(seed)
    net = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**config)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return net
