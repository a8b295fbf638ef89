"""Network families tasks pick from; every conv network works in 2D and 3D (``nd``)."""
import torch.nn as nn

from .unet import ConvCritic, UNetActor, UNetPlanner

__all__ = ["UNetPlanner", "UNetActor", "ConvCritic", "fast_layout"]


def fast_layout(module: nn.Module) -> nn.Module:
    """Store 2D conv weights channels-last (NHWC): on CPU the small convs and the concatenations
    of a U-Net run about twice as fast this way (bench/digits.py); the numbers are unchanged."""
    import torch
    return module.to(memory_format=torch.channels_last)
