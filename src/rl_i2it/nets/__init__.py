"""Network families tasks pick from; every conv network works in 2D and 3D (``nd``)."""
import torch.nn as nn

from .unet import ConvCritic, UNetActor, UNetPlanner

__all__ = ["UNetPlanner", "UNetActor", "ConvCritic", "channels_last", "fast_layout"]


def fast_layout(module: nn.Module) -> nn.Module:
    """The conv weight layout that runs fastest where ``module`` lives: :func:`channels_last` on
    the CPU (the small convs and the concatenations of a U-Net run about twice as fast,
    ``bench/digits.py``); on a GPU PyTorch's default, since channels-last gained nothing there
    (``bench/unet.py --device cuda``, H200: 0.98-1.09x the default's time)."""
    if all(p.device.type == "cpu" for p in module.parameters()):
        channels_last(module)
    return module


def channels_last(module: nn.Module) -> nn.Module:
    """Store conv weights channels-last (NHWC, and NDHWC for 3D convs); the numbers are unchanged."""
    import torch
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
        elif isinstance(m, nn.Conv3d):
            m.to(memory_format=torch.channels_last_3d)
    return module
