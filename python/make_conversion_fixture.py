"""Writes the fixtures of `abn convert torchvision` into Tests/Fixtures/torchvision: plain
torchvision state dicts, as `safetensors.torch.save_file(model.state_dict())` writes them
(float32, with the int64 `num_batches_tracked` tensors), and what PyTorch computes from them.

conversion_resnet50_w2.safetensors: a narrow torchvision ResNet-50 (base width 2, 3 input
channels, 5 classes) with random weights and running statistics, about a quarter of its BN
weights negative, and one BN weight, `SUB_EPS_LAYER` channel 0, of magnitude 4e-6 < eps (negative
too), in a channel whose small running variance makes its effect on the logits measurable.
conversion_resnet50_w2_want.safetensors: `input` (2, 3, 37, 35) and, from that network in eval
mode with its ReLUs replaced by LeakyReLU(0.01), in float64: `want.logits_as_trained` (the
network as saved) and `want.logits` (the sub-eps weight's magnitude raised to eps, the closest
an abn norm layer, whose scale is |weight| + eps, can come to it); `floor.logits`, the largest
|difference| of a float32 evaluation of the latter from its float64 one. Its metadata holds
what the conversion must report: `negative_weights`, `folded_layers` (comma-separated),
`below_eps`, `below_eps_largest`, `norm_layers` and `tensors` (without num_batches_tracked).

conversion_resnet18_w4_gray.safetensors: a narrow torchvision ResNet-18 (base width 4, one
input channel, 10 classes, random weights, a quarter of its BN weights negative) for the
command-line test, and conversion_resnet18_w4_gray.json: its test loss and accuracy on the
first 500 Fashion-MNIST test images (configs/tiny.yaml's data.test_limit), normalized as
configs/tiny.yaml says, with LeakyReLU(0.01), in float64, the float32 loss's |difference| from
it (`loss_floor`), and the negative weights the conversion folds.

Usage: python python/make_conversion_fixture.py [OUT_DIR] [FASHION_MNIST_DIR] (needs torch,
torchvision, safetensors and numpy).
"""
import copy
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from make_network_fixtures import narrow_resnet

EPS = 1e-5
SUB_EPS_LAYER = "layer4.2.bn3"
SUB_EPS = 4e-6


def randomize(model, gen):
    """Random float32-representable weights and running statistics; a quarter of the BN weights
    negative; ReLU -> LeakyReLU(0.01)."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, child_name, torch.nn.LeakyReLU(0.01))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            sign = torch.where(torch.rand(c, generator=gen) < 0.25, -1.0, 1.0)
            module.weight.data = sign * (torch.rand(c, generator=gen) + 0.3)
            module.bias.data = torch.randn(c, generator=gen) * 0.2
            module.running_mean.data = torch.randn(c, generator=gen) * 0.1
            module.running_var.data = torch.rand(c, generator=gen) + 0.5
            module.num_batches_tracked.fill_(1000)
    for value in model.state_dict().values():
        if value.is_floating_point():
            value.copy_(value.float())
    model.double().eval()


def negatives(model):
    """The count of negative BN weights and the names of the layers holding them."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    folded = sorted(name for name, m in layers.items() if (m.weight < 0).any())
    return int(sum((m.weight < 0).sum() for m in layers.values())), folded, len(layers)


def state_dict(model):
    """The state dict in float32, as torchvision saves it (num_batches_tracked stays int64)."""
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}


def floor(model, x, evaluate=lambda m, x: m(x)):
    """The largest |difference| of a float32 evaluation from the float64 one."""
    with torch.no_grad():
        return (evaluate(copy.deepcopy(model).float(), x.float()).double() - evaluate(model, x)).abs().max().item()


def resnet50(out_dir, gen):
    model = narrow_resnet("resnet50", 2, 5)
    randomize(model, gen)
    bn = model.get_submodule(SUB_EPS_LAYER)
    bn.weight.data[0] = -SUB_EPS
    bn.running_var.data[0] = 1e-4
    count, folded, layers = negatives(model)
    saved = state_dict(model)
    save_file(saved, os.path.join(out_dir, "conversion_resnet50_w2.safetensors"))

    x = torch.randn(2, 3, 37, 35, generator=gen).float().double()
    with torch.no_grad():
        as_trained = model(x)
        bn.weight.data[0] = -EPS
        logits = model(x)
    want = {"input": x.float(), "want.logits": logits.float(), "want.logits_as_trained": as_trained.float(),
            "floor.logits": torch.tensor([floor(model, x)]).float()}
    metadata = {"negative_weights": str(count), "folded_layers": ",".join(folded), "below_eps": "1",
                "below_eps_largest": repr(float(np.float32(SUB_EPS))), "norm_layers": str(layers),
                "tensors": str(sum(1 for k in saved if not k.endswith("num_batches_tracked")))}
    save_file(want, os.path.join(out_dir, "conversion_resnet50_w2_want.safetensors"), metadata=metadata)
    print(f"resnet50 w2: {count} negative weights in {len(folded)} of {layers} BN layers; "
          f"the sub-eps weight moves the logits by {(logits - as_trained).abs().max().item():.3g}, float32 floor {want['floor.logits'].item():.3g}")


def read_idx(path):
    """An IDX array (uint8) from a gzip file."""
    with gzip.open(path) as f:
        raw = f.read()
    rank = struct.unpack(">I", raw[:4])[0] & 0xFF
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    return np.frombuffer(raw[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


def resnet18_gray(out_dir, fashion_mnist, gen, limit=500, mean=0.2860, std=0.3530):
    model = narrow_resnet("resnet18", 4, 10)
    model.conv1 = torch.nn.Conv2d(1, 4, 7, 2, 3, bias=False)
    randomize(model, gen)
    count, folded, _ = negatives(model)
    save_file(state_dict(model), os.path.join(out_dir, "conversion_resnet18_w4_gray.safetensors"))

    images = read_idx(os.path.join(fashion_mnist, "t10k-images-idx3-ubyte.gz"))[:limit]
    labels = torch.from_numpy(read_idx(os.path.join(fashion_mnist, "t10k-labels-idx1-ubyte.gz"))[:limit].astype(np.int64))
    x = ((torch.from_numpy(images.astype(np.float32)) / 255 - mean) / std).unsqueeze(1).double()
    loss = lambda m, x: torch.nn.functional.cross_entropy(m(x), labels).reshape(1)
    with torch.no_grad():
        logits = model(x)
    want = {"test_limit": limit, "loss": torch.nn.functional.cross_entropy(logits, labels).item(),
            "accuracy": (logits.argmax(1) == labels).double().mean().item(), "loss_floor": floor(model, x, loss),
            "negative_weights": count, "folded_layers": len(folded)}
    with open(os.path.join(out_dir, "conversion_resnet18_w4_gray.json"), "w") as f:
        json.dump(want, f, indent=1)
    print(f"resnet18 w4 gray: {want}")


def main(argv):
    out_dir = argv[0] if argv else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "torchvision")
    fashion_mnist = argv[1] if len(argv) > 1 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(11)  # the layers' initial weights
    gen = torch.Generator().manual_seed(11)
    resnet50(out_dir, gen)
    resnet18_gray(out_dir, fashion_mnist, gen)


if __name__ == "__main__":
    main(sys.argv[1:])
