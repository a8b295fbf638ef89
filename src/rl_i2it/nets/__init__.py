"""Network families tasks pick from; every conv network works in 2D and 3D (``nd``)."""
from .unet import ConvCritic, UNetActor, UNetPlanner

__all__ = ["UNetPlanner", "UNetActor", "ConvCritic"]
