"""Writes the reference fixtures of Tests/Fixtures/resize and Tests/Fixtures/images.

resize/*.json: bilinear resizing as PyTorch's interpolate(mode="bilinear",
  align_corners=False) computes it in float64: fields shape [N, C, H, W], size [OH, OW], x, y.
  (Its backward is checked by finite differences, through the upsampled pixel loss.)
images/: small PNG and JPEG files written by Pillow, with what Pillow decodes from them in
  images/expected.json (name -> {width, height, channels, pixels (row-major, interleaved)}),
  palette masks with the indices Pillow stored (8-bit and 2-bit), files a mask must refuse
  (RGB, 16-bit) and a PNG header claiming 100000 x 100000 pixels.
Usage: python python/make_fixtures.py (needs torch, numpy, pillow).
"""
import json
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "Fixtures")


def resize_case(name, shape, size, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).float().double()
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    flat = lambda t: [float(v) for v in t.reshape(-1).tolist()]
    return {"name": name, "shape": list(shape), "size": list(size), "x": flat(x), "y": flat(y)}


def write_resize_cases():
    cases = [
        resize_case("up_4x_2x3x4x5", (2, 3, 4, 5), (16, 20), 1),
        resize_case("up_odd_1x2x3x3", (1, 2, 3, 3), (7, 11), 2),
        resize_case("down_1x1x9x8", (1, 1, 9, 8), (4, 3), 3),
        resize_case("same_1x2x5x4", (1, 2, 5, 4), (5, 4), 4),
    ]
    for case in cases:
        with open(os.path.join(FIXTURES, "resize", case["name"] + ".json"), "w") as f:
            json.dump(case, f)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_images():
    out = os.path.join(FIXTURES, "images")
    rng = np.random.RandomState(0)
    expected = {}

    def save(name, image, **options):
        path = os.path.join(out, name)
        image.save(path, **options)
        decoded = np.array(Image.open(path).convert("L" if image.mode == "L" else "RGB"))
        channels = 1 if decoded.ndim == 2 else 3
        expected[name] = {"width": decoded.shape[1], "height": decoded.shape[0], "channels": channels,
                          "pixels": [int(v) for v in decoded.reshape(-1)]}

    save("rgb_7x5.png", Image.fromarray(rng.randint(0, 256, (5, 7, 3), dtype=np.uint8), "RGB"))
    save("gray_5x4.png", Image.fromarray(rng.randint(0, 256, (4, 5), dtype=np.uint8), "L"))
    smooth = np.stack(np.meshgrid(np.arange(16) * 15, np.arange(12) * 20), -1).astype(np.uint8)
    save("rgb_16x12.jpg", Image.fromarray(np.dstack([smooth[..., 0], smooth[..., 1], 255 - smooth[..., 0]]), "RGB"), quality=95)
    save("gray_9x8.jpg", Image.fromarray((np.arange(72).reshape(8, 9) * 3).astype(np.uint8), "L"), quality=95)
    # palette masks (Pascal VOC's kind): the indices are the ids, whatever the colors
    def save_palette(name, indices, bits=8):
        image = Image.fromarray(indices, "P")
        image.putpalette([(37 * i) % 256 for i in range(3 * 2 ** bits)])  # colors unrelated to the indices
        image.save(os.path.join(out, name), bits=bits)
        expected[name] = {"width": indices.shape[1], "height": indices.shape[0], "channels": 1,
                          "pixels": [int(v) for v in np.array(Image.open(os.path.join(out, name))).reshape(-1)]}

    own = np.random.RandomState(5)  # its own generator: the other files stay as they were
    voc = own.randint(0, 21, (5, 6)).astype(np.uint8)
    voc[2, :] = 255  # an object border
    save_palette("palette_6x5.png", voc)
    save_palette("palette_2bit_5x3.png", own.randint(0, 4, (3, 5)).astype(np.uint8), bits=2)
    # what a mask must refuse
    Image.fromarray(rng.randint(0, 4, (4, 4, 3), dtype=np.uint8), "RGB").save(os.path.join(out, "rgb_mask_4x4.png"))
    Image.fromarray(rng.randint(0, 4, (4, 4)).astype(np.uint16)).save(os.path.join(out, "gray16_4x4.png"))
    # a header claiming 100000 x 100000 gray pixels, followed by one tiny data chunk
    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    with open(os.path.join(out, "huge_header.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    write_resize_cases()
    write_images()
    print("fixtures written to", os.path.normpath(FIXTURES))
