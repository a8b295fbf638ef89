"""Image helpers: uint8 pictures in and out of [0, 1] tensors."""
import numpy as np
import torch

from rl_i2it.data.images import from_uint8, to_uint8


def test_from_uint8_and_to_uint8_are_inverse():
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = from_uint8(a)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    assert torch.allclose(t[:, 2, 3], torch.from_numpy(a[2, 3]).float() / 255)
    assert np.array_equal(to_uint8(t), a)
    before = t.clone()
    a[:] = 0
    assert torch.equal(t, before)                          # a copy: later edits of the array do not reach it


def test_read_image_scales_16_bit_grey_and_turns_exif_photos_upright(tmp_path):
    """A 16-bit grey PNG reads as the 8-bit one it was made from (``convert('L')`` clipped it to
    white); a JPEG whose EXIF says 'rotate 90' reads upright (H and W as a viewer shows them); a
    16-bit PNG keeps its values whole for registration."""
    from PIL import Image
    from rl_i2it.data.images import read_image
    from rl_i2it.data.volumes import read_volume
    a = np.random.default_rng(0).integers(0, 256, (6, 9), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "g8.png")
    Image.fromarray(a.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    g8, g16 = read_image(tmp_path / "g8.png"), read_image(tmp_path / "g16.png")
    assert g16.shape == (1, 6, 9) and torch.allclose(g16, g8, atol=1e-6)
    assert read_image(tmp_path / "g16.png", "RGB").shape == (3, 6, 9)
    assert np.array_equal(read_volume(tmp_path / "g16.png").array, a.astype(np.float32) * 257)
    im = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6                                      # "rotate 90 clockwise to display"
    im.save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(tmp_path / "turned.jpg", "RGB").shape == (3, 80, 48)


def test_transparent_pictures_lie_on_the_background_their_pixels_stand_out_from(tmp_path):
    """A black digit on a transparent layer reads black on white; a white shape held only in the
    alpha (every pixel white) reads white on black, not all white; opaque RGBA reads as its RGB."""
    from PIL import Image
    from rl_i2it.data.images import read_image
    shape = np.zeros((8, 8), np.uint8)
    shape[2:6, 3:5] = 255
    for colour, inside, outside in ((0, 0.0, 1.0), (255, 1.0, 0.0)):
        rgba = np.zeros((8, 8, 4), np.uint8)
        rgba[..., :3], rgba[..., 3] = colour, shape
        Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
        grey = read_image(tmp_path / "a.png")[0]
        assert torch.all(grey[2:6, 3:5] == inside) and grey[0, 0] == outside and grey.mean() not in (0.0, 1.0)
        la = Image.fromarray(np.stack([np.full((8, 8), colour, np.uint8), shape], -1), "LA")
        la.save(tmp_path / "la.png")
        assert torch.equal(read_image(tmp_path / "la.png")[0], grey)
    rgb = np.random.default_rng(2).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, np.full((5, 6, 1), 255, np.uint8)], -1), "RGBA").save(tmp_path / "o.png")
    Image.fromarray(rgb).save(tmp_path / "o_rgb.png")
    assert torch.equal(read_image(tmp_path / "o.png"), read_image(tmp_path / "o_rgb.png"))    # opaque: as its RGB
    Image.fromarray(np.concatenate([rgb, np.zeros((5, 6, 1), np.uint8)], -1), "RGBA").save(tmp_path / "t.png")
    assert torch.equal(read_image(tmp_path / "t.png", "RGB"), read_image(tmp_path / "o_rgb.png", "RGB"))  # colour: RGB kept
    from rl_i2it.data.images import read_mask
    white = np.full((8, 8, 4), 255, np.uint8)
    white[..., 3] = shape                                 # a hole painted white on a transparent layer
    Image.fromarray(white, "RGBA").save(tmp_path / "mask.png")
    assert torch.equal(read_mask(tmp_path / "mask.png", (8, 8))[0], torch.from_numpy(shape > 0))


def test_to_uint8_rounds_to_the_nearest_level():
    x = torch.tensor([[[0.4, 0.6, 127.6, 254.4, 254.6]]]) / 255
    assert to_uint8(x).tolist() == [[0, 1, 128, 254, 255]]


def test_resize_longer_antialiases_when_shrinking():
    """Shrinking noise 8x averages it (a style image shrunk to CODE_SIDE, a photo shrunk by --size);
    plain bilinear would sample 2x2 pixels and keep most of the noise (std 0.14 vs 0.04 here)."""
    from rl_i2it.data.images import resize_longer
    x = torch.rand(1, 3, 128, 96, generator=torch.Generator().manual_seed(0))
    y = resize_longer(x, 16)
    assert y.shape == (1, 3, 16, 12)
    assert y.std() < 0.07 and abs(float(y.mean()) - 0.5) < 0.02


def test_read_alpha_is_upright_as_read_image(tmp_path):
    """A phone's cut-out: its alpha turns with the picture, so stylize can put it back on the result."""
    from PIL import Image
    from rl_i2it.data.images import read_alpha, read_image
    rgba = np.random.default_rng(0).integers(0, 256, (48, 80, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :20, 3] = 0                                   # left quarter (as stored) transparent
    im = Image.fromarray(rgba, "RGBA")
    exif = im.getexif()
    exif[0x0112] = 6                                      # "rotate 90 clockwise to display"
    im.save(tmp_path / "cut.png", exif=exif)
    img, alpha = read_image(tmp_path / "cut.png", "RGB"), read_alpha(tmp_path / "cut.png")
    assert img.shape == (3, 80, 48) and alpha.shape == (1, 80, 48)
    assert (alpha[0, :20] == 0).all() and (alpha[0, 20:] == 1).all()   # stored left = displayed top
