import pytest
import torch

from rl_i2it.features import AlexNetFeatures, VGG16Features


def test_vgg16_cardinality():
    net = VGG16Features(pretrained=False)
    out = net(torch.rand(2, 3, 32, 48))
    assert list(out) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"relu1_2": (2, 64, 32, 48), "relu2_2": (2, 128, 16, 24), "relu3_3": (2, 256, 8, 12),
                      "relu4_3": (2, 512, 4, 6), "relu5_3": (2, 512, 2, 3)}
    assert all((v >= 0).all() for v in out.values())
    # the torchvision layout: 13 convs at torchvision's indices
    convs = [i for i, m in enumerate(net.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert sum(p.numel() for p in net.parameters()) == 14_714_688       # torchvision vgg16().features


def test_alexnet_cardinality():
    net = AlexNetFeatures(pretrained=False)
    shapes = {k: tuple(v.shape) for k, v in net(torch.rand(1, 3, 64, 64)).items()}
    assert shapes == {"relu1": (1, 64, 15, 15), "relu2": (1, 192, 7, 7), "relu3": (1, 384, 3, 3),
                      "relu4": (1, 256, 3, 3), "relu5": (1, 256, 3, 3)}
    assert sum(p.numel() for p in net.parameters()) == 2_469_696        # torchvision alexnet().features
    assert tuple(net(torch.rand(1, 3, 31, 31))["relu5"].shape) == (1, 256, 1, 1)


def test_layer_subset_and_order():
    net = VGG16Features(pretrained=False)
    x = torch.rand(1, 3, 16, 16)
    out = net(x, ["relu3_3", "relu1_2"])
    assert list(out) == ["relu3_3", "relu1_2"]
    torch.testing.assert_close(out["relu3_3"], net(x)["relu3_3"])


def test_normalize_flag_and_grey():
    raw = VGG16Features(normalize=False, pretrained=False)
    norm = VGG16Features(normalize=True, pretrained=False)
    norm.load_state_dict(raw.state_dict())
    x = torch.rand(2, 3, 16, 16)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    manual = raw((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1), ["relu2_2"])["relu2_2"]
    torch.testing.assert_close(norm(x, ["relu2_2"])["relu2_2"], manual)
    g = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(raw(g)["relu1_2"], raw(g.repeat(1, 3, 1, 1))["relu1_2"])
    assert "mean" not in norm.state_dict()                               # torchvision's keys only


def test_frozen_but_differentiable():
    net = AlexNetFeatures(pretrained=False)
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 40, 40, requires_grad=True)
    net(x)["relu3"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_exceptions():
    vgg, alex = VGG16Features(pretrained=False), AlexNetFeatures(pretrained=False)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        vgg(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        vgg(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="at least 16x16"):
        vgg(torch.rand(1, 3, 15, 32))
    with pytest.raises(ValueError, match="at least 31x31"):
        alex(torch.rand(1, 3, 30, 64))
    with pytest.raises(ValueError, match="unknown layers"):
        vgg(torch.rand(1, 3, 16, 16), ["relu4_4"])


def test_vgg16_taps_are_the_named_relus_and_the_pools_are_max_pools():
    """relu{b}_{k} is the ReLU after the k-th conv of block b (blocks split by the 2x2 max-pools),
    as in torchvision's vgg16().features: a tap one conv early has the same shape and sign."""
    import torch.nn as nn
    net = VGG16Features(normalize=False, pretrained=False)
    feats = list(net.features)
    pools = [i for i, m in enumerate(feats) if isinstance(m, nn.MaxPool2d)]
    assert pools == [4, 9, 16, 23]
    assert all(feats[i].kernel_size == 2 and feats[i].stride == 2 for i in pools)
    block, k, where = 1, 0, {}
    for i, m in enumerate(feats):
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            block, k = block + 1, 0
        elif isinstance(m, nn.Conv2d):
            k += 1
        elif isinstance(m, nn.ReLU):
            where[f"relu{block}_{k}"] = i
    x = torch.rand(1, 3, 32, 32)
    out = net(x)
    for name in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"):
        torch.testing.assert_close(out[name], net.features[: where[name] + 1](x), atol=0, rtol=0)
