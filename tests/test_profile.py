import torch
import torch.nn as nn

from rl_i2it.nets.profile import count_macs, count_params


def test_counts_match_hand_arithmetic():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 4, 2, 1),
                        nn.ConvTranspose2d(4, 2, 4, 2, 1), nn.Flatten(), nn.Linear(2 * 16 * 16, 5))
    x = torch.rand(1, 3, 16, 16)
    conv1 = 16 * 16 * 8 * 3 * 9
    conv2 = 8 * 8 * 4 * 8 * 16
    tconv = 8 * 8 * 4 * 2 * 16          # each input pixel scatters a 4x4 kernel to 2 channels
    lin = 5 * 512
    assert count_macs(net, x) == conv1 + conv2 + tconv + lin
    assert count_macs(net, torch.rand(3, 3, 16, 16)) == 3 * (conv1 + conv2 + tconv + lin)
    assert count_params(net) == (8 * 27 + 8) + (4 * 8 * 16 + 4) + (4 * 2 * 16 + 2) + (512 * 5 + 5)
    assert not net[0]._forward_hooks                 # hooks removed


def test_layers_under_spectral_norm_are_counted():
    conv = nn.utils.parametrizations.spectral_norm(nn.Conv2d(3, 4, 3, padding=1))
    assert count_macs(conv, torch.rand(1, 3, 8, 8)) == 8 * 8 * 4 * 3 * 9
