"""The mIoU a perfect model could reach at each output stride of a segmentation folder set.

  python python/resolution_cap.py ROOT [--limit 1000] [--classes 11]

Averages each test mask's one-hot labels down to the logits' grid (96 / stride cells a side for
a 96-pixel image), resizes them back with bilinear interpolation (align_corners=False, as the
network's logits are), takes the argmax and prints mIoU and per-class IoU per output stride:
the cap that the resolution of the logits alone puts on a model. Needs torch, numpy, pillow.
"""
import argparse
import glob
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root")
    parser.add_argument("--limit", type=int, default=1000, help="test masks to use (0: all)")
    parser.add_argument("--classes", type=int, default=11)
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(args.root, "test", "masks", "*.png")))
    if args.limit:
        files = files[:args.limit]
    masks = torch.from_numpy(np.stack([np.array(Image.open(f)) for f in files]).astype(np.int64))
    valid = masks != 255
    c = args.classes
    onehot = F.one_hot(torch.where(valid, masks, 0), c).permute(0, 3, 1, 2).float() * valid[:, None].float()
    size = masks.shape[1:]
    for stride in (16, 8, 4, 2):
        low = F.adaptive_avg_pool2d(onehot, (size[0] // stride, size[1] // stride))
        predicted = F.interpolate(low, size=size, mode="bilinear", align_corners=False).argmax(1)
        confusion = torch.bincount(masks[valid] * c + predicted[valid], minlength=c * c).view(c, c).double()
        tp = confusion.diag()
        iou = tp / (confusion.sum(0) + confusion.sum(1) - tp)
        print(f"output stride {stride:2d}: mIoU {iou.mean().item():.3f}  per class " + " ".join(f"{v:.3f}" for v in iou.tolist()))


if __name__ == "__main__":
    main()
