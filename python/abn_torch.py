"""The project's PyTorch peer: abn's networks in PyTorch, to load abn checkpoints and to time a
training step beside abn.

  python python/abn_torch.py load [--checkpoint] FILE [--config CONFIG] [--data DIR] [--limit N]
      Loads a checkpoint written by `abn train` (the network, the data set and its
      normalization are those of the config stored in it, or of --config) and prints one JSON
      line with its test metrics: for a classifier, accuracy and loss on Fashion-MNIST's IDX
      files or an image folder; for DeepLab, on a segmentation folder, the loss per valid pixel,
      pixel accuracy, mIoU and per-class IoU from a confusion matrix over whole test images.
      InPlace-ABN weights become BatchNorm weights |weight| + eps. FILE may also be a plain
      safetensors file of a BatchNorm network under the same names (e.g. one `export` wrote):
      its metadata has no format "abn-checkpoint", its weights are used as they are, and
      --config (required for it) gives the network, the activation and the data.
  python python/abn_torch.py train CONFIG [--epochs N] [--threads 2] [--steps N] [--stop-after-epoch N] [--state FILE]
      Trains the DeepLab network of an abn segmentation config in PyTorch (BatchNorm + in-place
      activation, one process on the whole global batch) with the config's data, augmentation
      (random scale, crop with padding, flip), SGD, learning-rate schedule and epochs, and prints
      a JSON line per epoch, with the test mIoU, per-class IoU and pixel accuracy at the
      config's train.evaluate_every cadence and at the end: the reference a run of abn is
      compared with. Augmentation draws from torch's generator, not abn's, so the two see the
      same distribution, not the same crops. With --state FILE the run is written there after
      every epoch (network, optimizer, generator, the lines so far) and continues from it when
      started again, so an interrupted run loses at most one epoch.
  python python/abn_torch.py bench [--norm bn] [--batch 128] [--steps 20] [--threads 2]
      Times training steps (SGD, momentum 0.9) of the reference network on random data and
      prints one JSON line: median step seconds, images/s, GFLOP/s, activation bytes autograd
      keeps for backward, peak RSS.
  python python/abn_torch.py export --arch ARCH [--classes K] (IN.pth | --random SEED) OUT.safetensors
      Writes a torchvision network's state dict (without num_batches_tracked) as float32
      safetensors under torchvision's names, the input of abn's converter: from a torchvision
      checkpoint, or random weights with random BatchNorm statistics, about a quarter of the
      BatchNorm weights negative and a few below 1e-5 in magnitude.
  python python/abn_torch.py bench-torchvision [--crop 512] [--batch 2] [--classes 19] [--threads 2] [--repeats 3] [--warmup 1] [--checkpoint-stages]
      Times training steps (cross-entropy ignoring 255, SGD momentum 0.9, weight decay 1e-4) of
      torchvision's deeplabv3_resnet50 (output stride 8) on random images and labels, with
      --checkpoint-stages layer1..layer4 under torch.utils.checkpoint; prints one JSON line:
      median step seconds, images/s, pixels/s, peak resident memory (VmHWM) of the timed steps.

The networks are those of docs/design.md: the pre-activation ResNet classifier (stem, stages of
blocks, head norm, global average pool, linear) and DeepLabV3 on a pre-activation ResNet body
(docs/design.md#segmentation-network), their norm layers BatchNorm followed by an in-place activation. State-dict
names are those abn writes: stem.weight, stageS.B.{bn1,conv1,bn2,conv2,proj}.*, head_norm.*,
fc.*; body_norm.*, head.map_convs.J.weight, head.map_bn.*, head.global_pooling_conv.weight,
head.global_pooling_bn.*, head.red_conv.weight, head.pool_red_conv.weight, head.red_bn.*, cls.*.
The torchvision networks (model.arch resnet18|34|50|101, or deeplabv3 with model.backbone) are
those of python/torchvision_nets.py, under torchvision's names, every ReLU replaced by the
config's activation.
Needs torch, numpy, pyyaml, (for image folders) pillow, and for the torchvision networks torchvision
and safetensors.
"""
import argparse
import functools
import gzip
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml


# --- model ---------------------------------------------------------------------------------

class NormAct(nn.BatchNorm2d):
    """Batch norm, then the activation in place (the non-fused pair InPlace-ABN replaces)."""

    def __init__(self, channels, activation="leaky_relu", param=0.01, eps=1e-5, momentum=0.1):
        super().__init__(channels, eps=eps, momentum=momentum)
        if activation == "relu":
            raise ValueError("relu is not invertible; InPlace-ABN checkpoints use leaky_relu, elu or identity")
        self.activation, self.param = activation, param

    def forward(self, x):
        y = super().forward(x)
        if self.activation == "leaky_relu":
            return F.leaky_relu(y, self.param, inplace=True)
        if self.activation == "elu":
            return F.elu(y, self.param, inplace=True)
        return y


class PreActBlock(nn.Module):
    """norm -> conv3x3(stride) -> norm -> conv3x3, plus the identity or a 1x1 projection of the first norm's output."""

    def __init__(self, cin, cout, stride, norm, dilation=1):
        super().__init__()
        self.bn1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        h = self.bn1(x)  # a new tensor: the activation works in place on the norm's output, not on x
        shortcut = x if self.proj is None else self.proj(h)
        return self.conv2(self.bn2(self.conv1(h))) + shortcut


class PreActResNet(nn.Module):
    """The reference classifier: (N, in_channels, H, W) -> (N, classes) logits."""

    def __init__(self, widths=(32, 64, 128), blocks=(2, 2, 2), in_channels=1, classes=10, norm=NormAct):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        cin = widths[0]
        self.stages = []
        for i, (width, depth) in enumerate(zip(widths, blocks)):
            stage = nn.Sequential(*[PreActBlock(cin if j == 0 else width, width, 2 if i > 0 and j == 0 else 1, norm)
                                    for j in range(depth)])
            setattr(self, f"stage{i + 1}", stage)
            self.stages.append(stage)
            cin = width
        self.head_norm = norm(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(self.head_norm(x).mean(dim=(2, 3)))


class DeepLab(nn.Module):
    """DeepLabV3 on a pre-activation ResNet body: (N, in_channels, H, W) -> (N, classes, H, W) logits."""

    def __init__(self, in_channels, widths, blocks, output_stride, head_width, dilations, classes, norm):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False)
        cin = widths[0]
        self.stages = []
        for i, (width, depth) in enumerate(zip(widths, blocks)):
            # below output stride 16 the last stages keep stride 1 and dilate: 8 -> (1, 1, 1, 2), 4 -> (1, 1, 2, 4)
            dilation = {16: (1, 1, 1, 1), 8: (1, 1, 1, 2), 4: (1, 1, 2, 4)}[output_stride][i]
            first_stride = 1 if i == 0 or dilation > 1 else 2
            stage = nn.Sequential(*[PreActBlock(cin if j == 0 else width, width, first_stride if j == 0 else 1, norm,
                                                dilation) for j in range(depth)])
            setattr(self, f"stage{i + 1}", stage)
            self.stages.append(stage)
            cin = width
        self.body_norm = norm(cin)
        self.head = DeepLabHead(cin, head_width, dilations, norm)
        self.cls = nn.Conv2d(head_width, classes, 1)

    def forward(self, x):
        size = x.shape[2:]
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        logits = self.cls(self.head(self.body_norm(x)))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class DeepLabHead(nn.Module):
    """ASPP: a 1x1 and three dilated 3x3 branches, concatenated, normalized, reduced; plus a
    global-pooling branch added at every position; then the last norm."""

    def __init__(self, channels, width, dilations, norm):
        super().__init__()
        self.map_convs = nn.ModuleList([nn.Conv2d(channels, width, 1, bias=False)]
                                       + [nn.Conv2d(channels, width, 3, padding=d, dilation=d, bias=False) for d in dilations])
        self.map_bn = norm(4 * width)
        self.global_pooling_conv = nn.Conv2d(channels, width, 1, bias=False)
        self.global_pooling_bn = norm(width)
        self.red_conv = nn.Conv2d(4 * width, width, 1, bias=False)
        self.pool_red_conv = nn.Conv2d(width, width, 1, bias=False)
        self.red_bn = norm(width)

    def forward(self, x):
        out = self.red_conv(self.map_bn(torch.cat([conv(x) for conv in self.map_convs], dim=1)))
        pooled = self.pool_red_conv(self.global_pooling_bn(self.global_pooling_conv(x.mean(dim=(2, 3), keepdim=True))))
        return self.red_bn(out + pooled)


def preact_layers(config):
    """(norm layer factory, stage widths, stage depths) of an abn config's `model` section."""
    model = config.get("model", {})
    activation = model.get("activation", "leaky_relu")
    param = float(model.get("activation_param", 0.01))
    eps, momentum = float(model.get("eps", 1e-5)), float(model.get("momentum", 0.1))

    def norm(c):
        return NormAct(c, activation, param, eps, momentum)

    widths = tuple(model.get("widths", (32, 64, 128)))
    # model.blocks lists each stage's depth; one number (or none: model.blocks_per_stage) is every stage's
    blocks = model.get("blocks") or []
    blocks = [blocks] if isinstance(blocks, int) else blocks
    if len(blocks) <= 1:
        blocks = [blocks[0] if blocks else model.get("blocks_per_stage", 2)] * len(widths)
    return norm, widths, [int(b) for b in blocks]


def preact_resnet_network(config, in_channels, classes):
    """model.arch resnet: the pre-activation ResNet classifier."""
    norm, widths, blocks = preact_layers(config)
    return PreActResNet(widths, blocks, in_channels, classes, norm=norm)


def deeplab_network(config, in_channels, classes):
    """model.arch deeplab; head_width 0 and aspp_dilations [] mean the architecture's own, as in abn's config."""
    model = config.get("model", {})
    norm, widths, blocks = preact_layers(config)
    return DeepLab(in_channels, widths, blocks, int(model.get("output_stride", 16)), int(model.get("head_width") or 64),
                   tuple(model.get("aspp_dilations") or (2, 4, 6)), classes, norm)


# --- files ---------------------------------------------------------------------------------

def read_safetensors(path):
    """(name -> float32 tensor, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_size])
    metadata = header.pop("__metadata__", {})
    base = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} has dtype {entry['dtype']}; abn writes F32 only")
        start, end = entry["data_offsets"]
        values = np.frombuffer(blob[base + start:base + end], dtype="<f4")
        tensors[name] = torch.from_numpy(values.copy()).reshape(entry["shape"])
    return tensors, metadata


def read_idx(path):
    """An IDX array (uint8) from a gzip file."""
    with gzip.open(path) as f:
        raw = f.read()
    (magic,) = struct.unpack(">I", raw[:4])
    rank = magic & 0xFF
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    return np.frombuffer(raw[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


def load_checkpoint(net, tensors, norm_eps):
    """Copies a checkpoint's tensors into `net` by name (others, such as abn's
    optimizer.momentum.*, are ignored); norm weights become |weight| + norm_eps (an abn
    checkpoint) or, with norm_eps None, are copied as they are (a BatchNorm network's file)."""
    norm_names = {name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)}
    state = {}
    for name, current in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = current
            continue
        if name not in tensors:
            raise SystemExit(f"the checkpoint has no tensor {name}: is it a checkpoint of this network?")
        value = tensors[name]
        if tuple(value.shape) != tuple(current.shape):
            raise SystemExit(f"{name}: the checkpoint's shape {tuple(value.shape)} differs from the network's {tuple(current.shape)}")
        owner, _, field = name.rpartition(".")
        is_norm_weight = owner in norm_names and field == "weight"
        state[name] = value.abs() + norm_eps if is_norm_weight and norm_eps is not None else value
    net.load_state_dict(state)


class SegmentationLogits(nn.Module):
    """torchvision's DeepLabV3 returning its logits tensor instead of {"out": logits}."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def torchvision_model(build):
    """A builder of a torchvision network from `build(torchvision_nets, model section, channels,
    classes)`, with every ReLU replaced by
    model.activation and every BatchNorm's eps model.eps."""
    def make(config, channels, classes):
        import torchvision_nets
        model = config.get("model", {})
        net = build(torchvision_nets, model, channels, classes)
        torchvision_nets.set_activation(net, model.get("activation", "leaky_relu"), float(model.get("activation_param", 0.01)))
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = float(model.get("eps", 1e-5))
        return net
    return make


def torchvision_deeplabv3(tvn, model, channels, classes):
    """model.backbone (default resnet50), output_stride (default 16), aspp_dilations (default
    12-24-36 at stride 8, 6-12-18 at 16), head_width (default 256), base_width (default 64)."""
    return tvn.deeplabv3(model.get("backbone", "resnet50"), classes, int(model.get("output_stride", 16)), model.get("aspp_dilations") or None,
                         int(model.get("head_width") or 256), in_channels=channels, base_width=int(model.get("base_width", 64)))


def torchvision_resnet(depth):
    """The builder of torchvision's ResNet classifier `depth` (model.base_width, default 64)."""
    return lambda tvn, model, channels, classes: tvn.resnet(depth, classes, in_channels=channels, base_width=int(model.get("base_width", 64)))


class Architecture:
    """What the peer needs of a model.arch: its builder (config, channels, classes) -> network, the
    names of its first (input convolution) and last (output layer) tensors, whether it segments,
    and what turns the network into one that returns its logits tensor (none: it does)."""

    def __init__(self, build, first, last, segments, logits=None):
        self.build, self.first, self.last, self.segments, self.logits = build, first, last, segments, logits


# model.arch -> its Architecture, as abn's registry (Sources/ABNTraining/Registries/Architecture.swift)
ARCHITECTURES = {
    "resnet": Architecture(preact_resnet_network, "stem.weight", "fc.weight", False),
    "deeplab": Architecture(deeplab_network, "stem.weight", "cls.weight", True),
    "deeplabv3": Architecture(torchvision_model(torchvision_deeplabv3), "backbone.conv1.weight", "classifier.4.weight", True,
                              SegmentationLogits),
    **{depth: Architecture(torchvision_model(torchvision_resnet(depth)), "conv1.weight", "fc.weight", False)
       for depth in ("resnet18", "resnet34", "resnet50", "resnet101")},
}


def network_for_checkpoint(tensors, metadata, config):
    """(network in eval mode, input channels, classes, is segmentation) of a checkpoint's tensors
    under `config`: an abn checkpoint (metadata format "abn-checkpoint") or a BatchNorm network's
    file. Channels and classes come from the shapes of the network's first and last tensors."""
    model = config.get("model", {})
    name = model.get("arch", "resnet")
    if name not in ARCHITECTURES:
        raise SystemExit(f"model.arch {name!r}: this peer knows {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    if arch.first not in tensors or arch.last not in tensors:
        raise SystemExit(f"the checkpoint has no tensors {arch.first} and {arch.last}: is it a {name} of abn (model.arch)?")
    channels, classes = int(tensors[arch.first].shape[1]), int(tensors[arch.last].shape[0])
    net = arch.build(config, channels, classes)
    norm_eps = float(model.get("eps", 1e-5)) if metadata.get("format") == "abn-checkpoint" else None
    load_checkpoint(net, tensors, norm_eps)
    return (arch.logits(net) if arch.logits else net).eval(), channels, classes, arch.segments


# --- commands ------------------------------------------------------------------------------

def image_files(folder):
    """The PNG and JPEG files of a folder, sorted by name (as abn lists them)."""
    names = sorted(n for n in os.listdir(folder) if not n.startswith(".") and n.rsplit(".", 1)[-1].lower() in ("png", "jpg", "jpeg"))
    return [os.path.join(folder, n) for n in names]


def split_folder(root, split):
    """ROOT/train, or ROOT/test or else ROOT/val."""
    for name in (["train"] if split == "train" else ["test", "val"]):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    raise SystemExit(f"{root} has no {split} folder")


def read_image(path, channels):
    """An (H, W, channels) uint8 array: gray repeated into RGB, RGB to gray by abn's BT.601 rounding."""
    from PIL import Image
    image = Image.open(path)
    array = np.array(image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB"))
    if array.ndim == 2:
        array = array[:, :, None]
    if channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if channels == 1 and array.shape[2] == 3:
        rgb = array.astype(np.int64)
        luma = 299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2]
        array = ((luma + 500) // 1000).astype(np.uint8)[:, :, None]
    return array


def normalize(arrays, mean, std):
    """(N, C, H, W) float tensor of (pixel / 255 - mean) / std from (H, W, C) uint8 arrays."""
    x = torch.from_numpy(np.stack(arrays).astype(np.float32)).permute(0, 3, 1, 2)
    return (x / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def per_channel(value, channels):
    values = value if isinstance(value, list) else [value]
    return [float(v) for v in (values * channels if len(values) == 1 else values)]


def fashion_mnist_test_set(data, channels, limit):
    """Fashion-MNIST's test images as (N, H, W, C) uint8 and their labels, as abn reads them."""
    root = data.get("root", "/usr/share/datasets/fashion-mnist")
    images = read_idx(f"{root}/t10k-images-idx3-ubyte.gz")[:, :, :, None].repeat(channels, axis=3)
    labels = read_idx(f"{root}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return (images[:limit], labels[:limit]) if limit else (images, labels)


def image_folder_test_set(data, channels, limit):
    """An image folder's test images as (N, H, W, C) and their labels, as abn reads them."""
    root = data["root"]
    classes = sorted(d for d in os.listdir(split_folder(root, "train")) if not d.startswith(".")
                     and os.path.isdir(os.path.join(split_folder(root, "train"), d)))
    test = split_folder(root, "test")
    per_class = [image_files(os.path.join(test, c)) if os.path.isdir(os.path.join(test, c)) else [] for c in classes]
    files, labels = [], []
    for position in range(max(len(f) for f in per_class)):  # round-robin over classes, as abn lists them
        for label, listed in enumerate(per_class):
            if position < len(listed):
                files.append(listed[position])
                labels.append(label)
    if limit:
        files, labels = files[:limit], labels[:limit]
    size = data.get("image_size") or list(read_image(files[0], channels).shape[:2])
    arrays = []
    for path in files:
        image = torch.from_numpy(read_image(path, channels).astype(np.float32)).permute(2, 0, 1)[None]
        if list(image.shape[2:]) != list(size):
            image = F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False)
        arrays.append(image[0].permute(1, 2, 0).numpy())
    return np.stack(arrays), np.array(labels, dtype=np.int64)


def evaluate_classifier(net, config, channels, classes, limit, test_set):
    """Accuracy and mean loss over `test_set(data, channels, limit)` (`classes` unused: the
    signature of every DataFormat's evaluate)."""
    data = config.get("data", {})
    images, labels = test_set(data, channels, limit)
    mean, std = per_channel(data.get("mean", 0.2860), channels), per_channel(data.get("std", 0.3530), channels)
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = normalize(list(images[start:start + 500]), mean, std)
            y = torch.from_numpy(labels[start:start + 500])
            logits = net(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return {"test_accuracy": correct / len(images), "test_loss": loss / len(images), "samples": len(images)}


def evaluate_segmentation(net, config, channels, classes, limit):
    """Loss per valid pixel, pixel accuracy, per-class IoU and mIoU over whole test images."""
    data = config.get("data", {})
    test = split_folder(data["root"], "test")
    images = image_files(os.path.join(test, "images"))
    if limit:
        images = images[:limit]
    mean, std = per_channel(data.get("mean", 0.5), channels), per_channel(data.get("std", 0.25), channels)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    loss = 0.0
    with torch.no_grad():
        for path in images:
            stem = os.path.splitext(os.path.basename(path))[0]
            from PIL import Image
            mask = torch.from_numpy(np.array(Image.open(os.path.join(test, "masks", stem + ".png"))).astype(np.int64))
            logits = net(normalize([read_image(path, channels)], mean, std))[0]
            valid = mask != 255
            loss += F.cross_entropy(logits[None], torch.where(valid, mask, 0)[None], reduction="none")[0][valid].sum().item()
            predicted = logits.argmax(0)
            confusion += np.bincount((mask[valid] * classes + predicted[valid]).numpy(), minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1) - tp
    iou = [float(t / d) if d > 0 else None for t, d in zip(tp, denominator)]
    defined = [v for v in iou if v is not None]
    valid_pixels = max(1, int(confusion.sum()))
    return {"test_loss": loss / valid_pixels, "test_accuracy": float(tp.sum()) / valid_pixels, "test_miou": sum(defined) / max(1, len(defined)),
            "test_iou": iou, "samples": len(images)}


class DataFormat:
    """What the peer does with a data.format: evaluate(net, config, channels, classes, limit) on
    its test split, and whether its sets are segmentation sets."""

    def __init__(self, evaluate, segments):
        self.evaluate, self.segments = evaluate, segments


# data.format -> its DataFormat: the layouts this peer reads (abn's registry:
# Sources/ABNTraining/Registries/DataFormat.swift)
DATA_FORMATS = {
    "fashion-mnist": DataFormat(functools.partial(evaluate_classifier, test_set=fashion_mnist_test_set), False),
    "image-folder": DataFormat(functools.partial(evaluate_classifier, test_set=image_folder_test_set), False),
    "segmentation-folder": DataFormat(evaluate_segmentation, True),
}


def data_format(config):
    """The DataFormat of config's data.format, refused when the peer does not read it."""
    name = config.get("data", {}).get("format", "fashion-mnist")
    if name not in DATA_FORMATS:
        raise SystemExit(f"data.format {name!r}: this peer reads {', '.join(DATA_FORMATS)}")
    return DATA_FORMATS[name]


def command_load(args):
    if (args.checkpoint is None) == (args.checkpoint_file is None):
        raise SystemExit("give the checkpoint once: as FILE or as --checkpoint FILE")
    path = args.checkpoint or args.checkpoint_file
    tensors, metadata = read_safetensors(path)
    if args.config:
        with open(args.config) as f:
            config = yaml.safe_load(f) or {}
    elif metadata.get("format") == "abn-checkpoint":
        config = yaml.safe_load(metadata.get("config", "")) or {}
    else:
        raise SystemExit(f"{path} is not an abn checkpoint, so it holds no config: give --config")
    if args.data:
        config.setdefault("data", {})["root"] = args.data
    net, channels, classes, segmentation = network_for_checkpoint(tensors, metadata, config)
    data = data_format(config)
    if data.segments != segmentation:
        raise SystemExit(f"model.arch {config.get('model', {}).get('arch', 'resnet')} and data.format {config.get('data', {}).get('format')} "
                         "are not of the same task")
    limit = args.limit if args.limit is not None else int(config.get("data", {}).get("test_limit", 0))
    result = data.evaluate(net, config, channels, classes, limit)
    print(json.dumps({"checkpoint": path, "step": int(metadata.get("step", 0)), **result, "torch": torch.__version__}))


def learning_rate(step, total, train):
    """abn's schedule: linear warmup to the peak, then cosine, poly or constant."""
    peak, warmup = float(train.get("lr", 0.1)), min(int(train.get("warmup_steps", 200)), max(0, total - 1))
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    kind = train.get("schedule", "cosine")
    if kind == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * t))
    if kind == "poly":
        return peak * (1 - t) ** float(train.get("poly_power", 0.9))
    return peak


def augment(image, mask, data, generator):
    """abn's segmentation augmentation on one (C, H, W) float image and (H, W) mask: random scale
    (bilinear / nearest), a random crop of data.crop_size (smaller images placed at random in it,
    padded with 0 after normalization and 255 in the mask), and a flip."""
    crop_h, crop_w = data.get("crop_size", [96, 96])
    low, high = data.get("scale_range", [0.75, 1.5])
    scale = low + (high - low) * torch.rand((), generator=generator).item() if data.get("augment", True) else 1.0
    h, w = image.shape[1:]
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    if (sh, sw) != (h, w):
        image = F.interpolate(image[None], size=(sh, sw), mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None, None].float(), size=(sh, sw), mode="nearest")[0, 0].long()
    out_image = torch.zeros(image.shape[0], crop_h, crop_w)
    out_mask = torch.full((crop_h, crop_w), 255, dtype=torch.long)
    oy = torch.randint(0, abs(sh - crop_h) + 1, (), generator=generator).item()
    ox = torch.randint(0, abs(sw - crop_w) + 1, (), generator=generator).item()
    # the window of the scaled image that lands in the crop, and where
    sy, dy = (oy, 0) if sh >= crop_h else (0, oy)
    sx, dx = (ox, 0) if sw >= crop_w else (0, ox)
    ch, cw = min(crop_h, sh), min(crop_w, sw)
    out_image[:, dy:dy + ch, dx:dx + cw] = image[:, sy:sy + ch, sx:sx + cw]
    out_mask[dy:dy + ch, dx:dx + cw] = mask[sy:sy + ch, sx:sx + cw]
    if data.get("flip", True) and torch.rand((), generator=generator).item() < 0.5:
        out_image, out_mask = out_image.flip(-1), out_mask.flip(-1)
    return out_image, out_mask


def command_train(args):
    from PIL import Image
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        config = yaml.safe_load(f)
    data, train, model = config.get("data", {}), config.get("train", {}), config.get("model", {})
    if model.get("arch") != "deeplab" or data.get("format") != "segmentation-folder":
        raise SystemExit("train takes a segmentation config (model.arch deeplab, data.format segmentation-folder)")
    root = data["root"]
    names_file = os.path.join(root, "classes.txt")
    classes = int(model.get("classes", 0)) or (len([l for l in open(names_file).read().splitlines() if l.strip()]) if os.path.exists(names_file) else 0)
    if classes == 0:
        raise SystemExit(f"set model.classes or give {root}/classes.txt")
    files = image_files(os.path.join(split_folder(root, "train"), "images"))
    channels = int(data.get("channels", 0)) or read_image(files[0], 3 if np.array(Image.open(files[0])).ndim == 3 else 1).shape[2]
    mean, std = per_channel(data.get("mean", 0.5), channels), per_channel(data.get("std", 0.25), channels)
    masks_dir = os.path.join(split_folder(root, "train"), "masks")
    images = [normalize([read_image(p, channels)], mean, std)[0] for p in files]
    masks = [torch.from_numpy(np.array(Image.open(os.path.join(masks_dir, os.path.splitext(os.path.basename(p))[0] + ".png"))).astype(np.int64))
             for p in files]
    torch.manual_seed(int(model.get("init_seed", 0)))
    net = deeplab_network(config, channels, classes)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")  # abn's He-normal
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    optimizer = torch.optim.SGD(net.parameters(), lr=float(train.get("lr", 0.1)), momentum=float(train.get("momentum", 0.9)),
                                nesterov=bool(train.get("nesterov", True)), weight_decay=float(train.get("weight_decay", 5e-4)))
    batch = int(train.get("global_batch", 16))
    epochs = args.epochs or int(train.get("epochs", 10))
    steps_per_epoch = len(images) // batch
    total = epochs * steps_per_epoch
    if args.steps:
        total = min(total, args.steps)
    generator = torch.Generator().manual_seed(int(train.get("seed", 0)))
    step, first_epoch, spent, lines = 0, 0, 0.0, []
    if args.state and os.path.exists(args.state):
        state = torch.load(args.state, weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, first_epoch, spent, lines = state["step"], state["epoch"], state["seconds"], state["lines"]
        for line in lines:
            print(line, flush=True)
        print(f"resumed from {args.state} after epoch {first_epoch} (step {step})", file=sys.stderr, flush=True)
    every = int(train.get("evaluate_every", 1))
    start = time.perf_counter() - spent
    for epoch in range(first_epoch, epochs):
        order = torch.randperm(len(images), generator=generator).tolist()
        net.train()
        for b in range(steps_per_epoch):
            if step >= total:
                break
            pairs = [augment(images[i], masks[i], data, generator) for i in order[b * batch:(b + 1) * batch]]
            x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, train)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y, ignore_index=255)
            loss.backward()
            optimizer.step()
            step += 1
        last = step >= total or epoch + 1 == args.stop_after_epoch
        result = {}
        if (epoch + 1) % every == 0 or last:
            net.eval()
            result = evaluate_segmentation(net, config, channels, classes, int(data.get("test_limit", 0)))
        line = json.dumps({"epoch": epoch + 1, "step": step, "train_loss": loss.item(), "seconds": time.perf_counter() - start, **result})
        print(line, flush=True)
        lines.append(line)
        if args.state:
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": step,
                        "epoch": epoch + 1, "seconds": time.perf_counter() - start, "lines": lines}, args.state + ".tmp")
            os.replace(args.state + ".tmp", args.state)
        if last:
            break


def training_flops(net, x):
    """Flops of one training step: conv and linear multiply-adds x 2, x 3 (forward, both gradients)."""
    macs = [0]

    def count(module, _inputs, output):
        if isinstance(module, nn.Conv2d):
            macs[0] += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            macs[0] += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(x.clone())
    for h in hooks:
        h.remove()
    return 6 * macs[0]


def saved_activation_bytes(net, x, y):
    """Bytes of the distinct storages autograd keeps for backward, parameters excluded."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(net(x.clone()), y)
    parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
    return sum(n for ptr, n in storages.items() if ptr not in parameters)


def command_bench(args):
    if args.norm != "bn":
        raise SystemExit("only --norm bn (BatchNorm + in-place leaky ReLU) is built in")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    widths = tuple(int(w) for w in args.widths.split(","))
    net = PreActResNet(widths, [args.blocks] * len(widths))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 1, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    flops = training_flops(net, x)
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x.clone()), y).backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    print(json.dumps({"peer": "pytorch-" + torch.__version__, "norm": args.norm, "batch": args.batch,
                      "threads": args.threads, "step_s": step_s, "images_per_s": args.batch / step_s,
                      "gflop_per_step": flops / 1e9, "gflops": flops / step_s / 1e9,
                      "params": sum(p.numel() for p in net.parameters()),
                      "saved_activation_mib": saved_activation_bytes(net, x, y) / 2**20,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def command_export(args):
    import safetensors.torch
    import torchvision_nets
    if args.arch not in torchvision_nets.ARCHS:
        raise SystemExit(f"--arch {args.arch}: one of {', '.join(torchvision_nets.ARCHS)}")
    if len(args.files) != (1 if args.random is not None else 2):
        raise SystemExit("give IN.pth OUT.safetensors, or --random SEED OUT.safetensors")
    if args.random is not None:
        torch.manual_seed(args.random)
        classes = args.classes or torchvision_nets.DEFAULT_CLASSES["segmentation" if torchvision_nets.is_segmentation(args.arch) else "classifier"]
        net = torchvision_nets.network(args.arch, classes)
        torchvision_nets.randomize_norms(net, torch.Generator().manual_seed(args.random))
        tensors = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    else:
        try:
            tensors, notes = torchvision_nets.fit_state(args.arch, torchvision_nets.read_torchvision_file(args.files[0]), args.classes)
        except ValueError as error:
            raise SystemExit(f"{args.files[0]}: {error}")
        for note in notes:
            print(f"{args.files[0]}: {note}", file=sys.stderr)
    safetensors.torch.save_file(tensors, args.files[-1], metadata={"arch": args.arch})
    norm_weights = torch.cat([v for k, v in tensors.items() if k.endswith(".weight") and k[:-len("weight")] + "running_var" in tensors])
    print(json.dumps({"output": args.files[-1], "arch": args.arch, "classes": int(tensors[torchvision_nets.head_prefix(args.arch) + "weight"].shape[0]),
                      "tensors": len(tensors), "values": sum(v.numel() for v in tensors.values()),
                      "negative_norm_weights": int((norm_weights < 0).sum()), "norm_weights_below_1e-5": int((norm_weights.abs() < 1e-5).sum()),
                      "norm_weights": norm_weights.numel()}))


def peak_rss_reset():
    """Resets the process's peak resident memory (VmHWM) to its current resident memory."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_bytes():
    """VmHWM of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("/proc/self/status has no VmHWM")


def command_bench_torchvision(args):
    import torchvision
    from torchvision.models.segmentation import deeplabv3_resnet50
    import torchvision_nets
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=args.classes, aux_loss=False)
    if args.checkpoint_stages:
        torchvision_nets.checkpoint_stages(net)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, args.crop, args.crop)
    y = torch.randint(0, args.classes, (args.batch, args.crop, args.crop))
    times = []
    for step in range(args.warmup + args.repeats):
        if step == args.warmup:
            peak_rss_reset()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x)["out"], y, ignore_index=255).backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    print(json.dumps({"peer": "pytorch-" + torch.__version__, "torchvision": torchvision.__version__, "model": "deeplabv3_resnet50",
                      "output_stride": 8, "crop": args.crop, "batch": args.batch, "classes": args.classes, "threads": args.threads,
                      "checkpoint_stages": args.checkpoint_stages, "steps": len(times), "step_s": step_s, "steps_s": times,
                      "images_per_s": args.batch / step_s, "pixels_per_s": args.batch * args.crop * args.crop / step_s,
                      "peak_rss_bytes": peak_rss_bytes()}))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="test metrics of an abn checkpoint, or of a BatchNorm network's safetensors file")
    load.add_argument("checkpoint", nargs="?", help="the file (or give it as --checkpoint)")
    load.add_argument("--checkpoint", dest="checkpoint_file", metavar="FILE", help="the file")
    load.add_argument("--config", help="the config of the network and data (default: the one an abn checkpoint stores)")
    load.add_argument("--data", help="the data set's folder (default: the config's data.root)")
    load.add_argument("--limit", type=int, help="use only the first N test images (0: all; default: the config's data.test_limit)")
    train = commands.add_parser("train", help="train an abn segmentation config in PyTorch, for comparison")
    train.add_argument("config")
    train.add_argument("--epochs", type=int, help="epochs (default: the config's train.epochs)")
    train.add_argument("--steps", type=int, help="stop after this many steps (for a quick check)")
    train.add_argument("--stop-after-epoch", type=int, help="stop after this epoch, the schedule still spanning all epochs")
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--state", help="write the run here after every epoch, and continue from it when it exists")
    bench = commands.add_parser("bench", help="time training steps of the reference network")
    bench.add_argument("--norm", default="bn", help="bn: BatchNorm + in-place leaky ReLU")
    bench.add_argument("--batch", type=int, default=128)
    bench.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--widths", default="32,64,128")
    bench.add_argument("--blocks", type=int, default=2, help="blocks per stage")
    bench.add_argument("--size", type=int, default=28, help="image side in pixels")
    export = commands.add_parser("export", help="a torchvision network's weights as safetensors, for abn's converter",
                                 usage="%(prog)s --arch ARCH [--classes K] (IN.pth | --random SEED) OUT.safetensors",
                                 description="Writes a torchvision network's state dict (float32, without num_batches_tracked) "
                                             "as safetensors under torchvision's names.")
    export.add_argument("--arch", required=True,
                        help="torchvision's resnet18|34|50|101 or deeplabv3_resnet50|101 (output stride 8, ASPP 12/24/36); "
                             "deeplabv3_resnet18|34 put the same head on a resnet18|34 body whose BasicBlocks are dilated "
                             "(torchvision itself has no such model)")
    export.add_argument("--classes", type=int, metavar="K", help="classes of the head, fc or classifier.4 (default: the file's; "
                                                    "with --random 1000 for a ResNet, 21 for DeepLabV3); a head of another size is initialized")
    export.add_argument("--random", type=int, metavar="SEED", help="random weights instead of IN.pth: random BatchNorm statistics and biases, "
                                                                    "about a quarter of BatchNorm weights negative, a few below 1e-5 in magnitude")
    export.add_argument("files", nargs="+", metavar="FILE",
                        help="IN.pth OUT.safetensors, or OUT.safetensors with --random: a torchvision state dict (or one under 'state_dict' or 'model'; 'module.' prefixes stripped; "
                             "for DeepLabV3 also a ResNet classifier's, whose body becomes the backbone), and the output")
    bench_tv = commands.add_parser("bench-torchvision", help="time training steps of torchvision's deeplabv3_resnet50")
    bench_tv.add_argument("--crop", type=int, default=512, help="image side in pixels")
    bench_tv.add_argument("--batch", type=int, default=2)
    bench_tv.add_argument("--classes", type=int, default=19)
    bench_tv.add_argument("--threads", type=int, default=2)
    bench_tv.add_argument("--repeats", type=int, default=3, help="timed steps (the median is reported)")
    bench_tv.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    bench_tv.add_argument("--checkpoint-stages", action="store_true", help="run layer1..layer4 under torch.utils.checkpoint (use_reentrant=False)")
    args = parser.parse_args(argv)
    {"load": command_load, "train": command_train, "bench": command_bench, "export": command_export,
     "bench-torchvision": command_bench_torchvision}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
