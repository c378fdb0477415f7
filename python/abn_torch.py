"""The project's PyTorch peer: the reference network in PyTorch, to load abn checkpoints and to
time a training step beside abn.

  python python/abn_torch.py load CHECKPOINT [--data DIR] [--limit N]
      Loads a checkpoint written by `abn train` (the network is rebuilt from the config stored
      in it) and prints one JSON line with its Fashion-MNIST test accuracy and loss. InPlace-ABN
      weights become BatchNorm weights |weight| + eps.
  python python/abn_torch.py bench [--norm bn] [--batch 128] [--steps 20] [--threads 2]
      Times training steps (SGD, momentum 0.9) of the reference network on random data and
      prints one JSON line: median step seconds, images/s, GFLOP/s, activation bytes autograd
      keeps for backward, peak RSS.

The network is that of the README: a pre-activation ResNet (stem, stages of blocks, head norm,
global average pool, linear) whose norm layers are BatchNorm followed by an in-place leaky ReLU.
Its state-dict names are those abn writes: stem.weight, stageS.B.{bn1,conv1,bn2,conv2,proj}.*,
head_norm.*, fc.*. Needs torch, numpy and pyyaml.
"""
import argparse
import gzip
import json
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

    def __init__(self, cin, cout, stride, norm):
        super().__init__()
        self.bn1 = norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        h = self.bn1(x)  # a new tensor: the activation works in place on the norm's output, not on x
        shortcut = x if self.proj is None else self.proj(h)
        return self.conv2(self.bn2(self.conv1(h))) + shortcut


class PreActResNet(nn.Module):
    """The reference classifier: (N, in_channels, H, W) -> (N, classes) logits."""

    def __init__(self, widths=(32, 64, 128), blocks=2, in_channels=1, classes=10, norm=NormAct):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        cin = widths[0]
        self.stages = []
        for i, width in enumerate(widths):
            stage = nn.Sequential(*[PreActBlock(cin if j == 0 else width, width, 2 if i > 0 and j == 0 else 1, norm)
                                    for j in range(blocks)])
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


def network_from_config(config):
    """The network an abn config describes (its `model` section)."""
    model = config.get("model", {})
    activation = model.get("activation", "leaky_relu")
    param = float(model.get("activation_param", 0.01))
    eps, momentum = float(model.get("eps", 1e-5)), float(model.get("momentum", 0.1))

    def norm(c):
        return NormAct(c, activation, param, eps, momentum)

    return PreActResNet(tuple(model.get("widths", (32, 64, 128))), int(model.get("blocks_per_stage", 2)), norm=norm)


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


def load_checkpoint(net, tensors, eps):
    """Copies an abn checkpoint's tensors into `net`; norm weights become |weight| + eps."""
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
        state[name] = value.abs() + eps if owner in norm_names and field == "weight" else value
    net.load_state_dict(state)


# --- commands ------------------------------------------------------------------------------

def command_load(args):
    tensors, metadata = read_safetensors(args.checkpoint)
    config = yaml.safe_load(metadata.get("config", "")) or {}
    net = network_from_config(config)
    load_checkpoint(net, tensors, float(config.get("model", {}).get("eps", 1e-5)))
    net.eval()
    data = args.data or config.get("data", {}).get("root", "/usr/share/datasets/fashion-mnist")
    images = read_idx(f"{data}/t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    labels = read_idx(f"{data}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    limit = args.limit if args.limit is not None else int(config.get("data", {}).get("test_limit", 0))
    if limit:
        images, labels = images[:limit], labels[:limit]
    mean = float(metadata.get("data_mean", config.get("data", {}).get("mean", 0.2860)))
    std = float(metadata.get("data_std", config.get("data", {}).get("std", 0.3530)))
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(images), 500):
            x = (torch.from_numpy(images[start:start + 500]).unsqueeze(1) - mean) / std
            y = torch.from_numpy(labels[start:start + 500])
            logits = net(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    print(json.dumps({"checkpoint": args.checkpoint, "step": int(metadata.get("step", 0)),
                      "test_accuracy": correct / len(images), "test_loss": loss / len(images), "samples": len(images),
                      "torch": torch.__version__}))


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
    net = PreActResNet(tuple(int(w) for w in args.widths.split(",")), args.blocks)
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


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="test accuracy of an abn checkpoint")
    load.add_argument("checkpoint")
    load.add_argument("--data", help="folder of the Fashion-MNIST IDX files (default: the checkpoint config's data.root)")
    load.add_argument("--limit", type=int, help="use only the first N test images (0: all; default: the config's data.test_limit)")
    bench = commands.add_parser("bench", help="time training steps of the reference network")
    bench.add_argument("--norm", default="bn", help="bn: BatchNorm + in-place leaky ReLU")
    bench.add_argument("--batch", type=int, default=128)
    bench.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    bench.add_argument("--threads", type=int, default=2)
    bench.add_argument("--widths", default="32,64,128")
    bench.add_argument("--blocks", type=int, default=2, help="blocks per stage")
    bench.add_argument("--size", type=int, default=28, help="image side in pixels")
    args = parser.parse_args(argv)
    {"load": command_load, "bench": command_bench}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
