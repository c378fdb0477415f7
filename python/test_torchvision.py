"""Checks of python/torchvision_nets.py and of abn_torch.py's export and load on the torchvision
networks, with random weights and small random data sets (nothing is downloaded):

  python python/test_torchvision.py [--quick]

- export --random of every arch gives torchvision's state-dict names and shapes (without
  num_batches_tracked), float32, a quarter of BatchNorm weights negative and a few below 1e-5;
  the networks compute what torchvision's own compute with the same weights, and the BasicBlock
  bodies are dilated like torchvision's Bottleneck bodies;
- export of a .pth (wrapped, with "module." prefixes, an auxiliary head, another class count, or
  an ImageNet classifier under a DeepLabV3) keeps every tensor it should;
- a fake abn checkpoint (BatchNorm weights w written as +-(w - eps), momentum entries, the
  checksum abn writes) loads into networks that reproduce the original's logits, and `load`
  prints the metrics of the original; so does an exported BatchNorm file under --config.
--quick leaves out resnet101 and deeplabv3_resnet101.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import safetensors.torch
import torch
import torch.nn as nn
import torchvision
import yaml
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import abn_torch  # noqa: E402
import torchvision_nets as tvn  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "abn_torch.py")
EPS = 1e-5


def run(*args):
    """abn_torch.py's JSON line for `args`."""
    done = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    assert done.returncode == 0, f"abn_torch.py {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_state(arch, classes):
    """torchvision's own state dict of `arch` without num_batches_tracked: names -> shapes."""
    models = torchvision.models
    if arch in tvn.BACKBONES:
        net = getattr(models, arch)(weights=None, num_classes=classes)
    elif arch in ("deeplabv3_resnet50", "deeplabv3_resnet101"):
        net = getattr(models.segmentation, arch)(weights=None, weights_backbone=None, num_classes=classes, aux_loss=False)
    else:  # torchvision has no DeepLabV3 on a BasicBlock body: its resnet body and its DeepLabHead on 512 channels
        body = getattr(models, arch.removeprefix("deeplabv3_"))(weights=None).state_dict()
        head = models.segmentation.deeplabv3.DeepLabHead(512, classes).state_dict()
        return {**{"backbone." + k: tuple(v.shape) for k, v in body.items() if not k.startswith("fc.")},
                **{"classifier." + k: tuple(v.shape) for k, v in head.items()}}
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def without_counters(shapes):
    return {k: v for k, v in shapes.items() if not k.endswith("num_batches_tracked")}


def check_export_random(archs, folder):
    for arch in archs:
        out = os.path.join(folder, arch + ".safetensors")
        line = run("export", "--arch", arch, "--classes", "7", "--random", "3", out)
        tensors = safetensors.torch.load_file(out)
        assert {k: tuple(v.shape) for k, v in tensors.items()} == without_counters(reference_state(arch, 7)), arch
        assert all(v.dtype == torch.float32 for v in tensors.values())
        weights = torch.cat([v for k, v in tensors.items() if k.endswith(".weight") and k[:-6] + "running_var" in tensors])
        variances = torch.cat([v for k, v in tensors.items() if k.endswith("running_var")])
        negative = (weights < 0).float().mean().item()
        assert 0.2 < negative < 0.3 and (weights.abs() < EPS).sum() >= 1 and (variances > 0).all(), (arch, negative)
        assert line["negative_norm_weights"] == (weights < 0).sum().item()
        again = os.path.join(folder, "again.safetensors")
        run("export", "--arch", arch, "--classes", "7", "--random", "3", again)
        assert open(out, "rb").read() == open(again, "rb").read(), f"{arch}: --random is not deterministic"
        print(f"ok export --random {arch}: {len(tensors)} tensors, {negative:.1%} negative BatchNorm weights, "
              f"{int((weights.abs() < EPS).sum())} below 1e-5")


def check_same_as_torchvision(archs):
    """The networks compute what torchvision's compute with the same (random) weights."""
    models = torchvision.models
    x = torch.randn(2, 3, 67, 61)
    for arch in archs:
        torch.manual_seed(1)
        ours = tvn.network(arch, 5)
        tvn.randomize_norms(ours, torch.Generator().manual_seed(1))
        if arch in tvn.BACKBONES:
            theirs = getattr(models, arch)(weights=None, num_classes=5)
        elif arch in ("deeplabv3_resnet50", "deeplabv3_resnet101"):
            theirs = getattr(models.segmentation, arch)(weights=None, weights_backbone=None, num_classes=5, aux_loss=False)
        else:
            continue
        theirs.load_state_dict(ours.state_dict())
        with torch.no_grad():
            a, b = ours.eval()(x), theirs.eval()(x)
        a, b = (a["out"], b["out"]) if isinstance(a, dict) else (a, b)
        assert torch.equal(a, b), arch
        print(f"ok {arch} computes torchvision's {arch}")


def check_dilation():
    """A BasicBlock body is dilated block by block as torchvision dilates a Bottleneck body's 3x3 convolutions."""
    for stride in (8, 16):
        basic = tvn.deeplabv3("resnet18", 3, stride).backbone
        bottleneck = tvn.deeplabv3("resnet50", 3, stride).backbone
        for layer in ("layer1", "layer2", "layer3", "layer4"):
            for i in range(2):
                block, reference = basic[layer][i], bottleneck[layer][i]
                assert block.conv1.dilation == block.conv2.dilation == reference.conv2.dilation, (stride, layer, i)
                assert block.conv1.padding == block.conv1.dilation and block.conv2.padding == block.conv2.dilation
                assert block.conv1.stride == reference.conv2.stride, (stride, layer, i)
        with torch.no_grad():
            size = basic(torch.zeros(1, 3, 64, 64))["out"].shape[2:]
        assert tuple(size) == (64 // stride, 64 // stride), (stride, size)
        print(f"ok resnet18 body at output stride {stride}: dilations "
              + " ".join(f"{layer}:{[basic[layer][i].conv1.dilation[0] for i in range(2)]}" for layer in ("layer3", "layer4")))


def check_export_pth(folder):
    torch.manual_seed(2)
    net = torchvision.models.resnet18(weights=None, num_classes=10)
    state = net.state_dict()
    path = os.path.join(folder, "wrapped.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 3}, path)
    out = os.path.join(folder, "wrapped.safetensors")
    run("export", "--arch", "resnet18", path, out)
    tensors = safetensors.torch.load_file(out)
    assert set(tensors) == set(without_counters(state)) and all(torch.equal(tensors[k], state[k]) for k in tensors)
    print("ok export of a wrapped resnet18 .pth: every tensor kept")

    run("export", "--arch", "deeplabv3_resnet18", "--classes", "4", path, out)
    tensors = safetensors.torch.load_file(out)
    assert all(torch.equal(tensors["backbone." + k], v) for k, v in state.items() if "backbone." + k in tensors)
    assert sum(k.startswith("backbone.") for k in tensors) == sum(not k.startswith("fc.") for k in without_counters(state))
    assert tensors["classifier.4.weight"].shape[0] == 4
    print("ok export of a resnet18 classifier as deeplabv3_resnet18: its body is the backbone")

    seg = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    path = os.path.join(folder, "seg.pth")
    torch.save({"model": seg.state_dict()}, path)
    run("export", "--arch", "deeplabv3_resnet50", "--classes", "19", path, out)
    tensors = safetensors.torch.load_file(out)
    state = seg.state_dict()
    kept = [k for k in tensors if not k.startswith("classifier.4.")]
    assert all(torch.equal(tensors[k], state[k]) for k in kept) and tensors["classifier.4.weight"].shape[0] == 19
    assert not any(k.startswith("aux_classifier.") for k in tensors)
    print("ok export of deeplabv3_resnet50 with an auxiliary head at 19 classes: the head alone initialized")


def write_abn_checkpoint(path, tensors, config, step):
    """`tensors` in a file as abn writes a checkpoint: F32 safetensors whose header is compact
    JSON with sorted keys padded with spaces to a multiple of 8, abn's metadata, and the CRC-32
    of the whole file computed with its own 8 hex digits written as "00000000"."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"data_offsets": [offset, offset + len(data)], "dtype": "F32", "shape": list(tensors[name].shape)}
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "abn-checkpoint", "format_version": "2", "step": str(step), "epoch": "1",
                              "step_in_epoch": "0", "world_size": "1", "seed": "0", "config": yaml.safe_dump(config),
                              "checksum": "00000000"}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    blob = struct.pack("<Q", len(text)) + text + b"".join(chunks)
    at = blob.index(b'"checksum":"00000000"') + len(b'"checksum":"')
    with open(path, "wb") as f:
        f.write(blob[:at] + b"%08x" % zlib.crc32(blob) + blob[at + 8:])


def abn_tensors(net, eps, generator):
    """A network's tensors as an abn checkpoint holds them: BatchNorm weights w as +-(w - eps)
    (so that |.| + eps gives w back), plus optimizer.momentum.* entries."""
    norms = {name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)}
    tensors = {}
    for name, value in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.rpartition(".")[0] in norms and name.endswith(".weight"):
            sign = torch.where(torch.rand(value.shape, generator=generator) < 0.5, -1.0, 1.0)
            value = sign * (value - eps)
        tensors[name] = value.clone()
    for name, p in net.named_parameters():
        tensors["optimizer.momentum." + name] = torch.randn(p.shape, generator=generator)
    return tensors


def abn_norms(net, eps):
    """BatchNorm weights made positive and at least 2 eps (which an abn checkpoint can hold), BatchNorm eps `eps`."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(m.weight.abs().clamp(min=2 * eps))
                m.eps = eps
    return net


def image_folder(root, classes, size, count, generator):
    """A random image-folder set: ROOT/train/CLASS/ (one image each) and ROOT/test/CLASS/."""
    for split, n in (("train", 1), ("test", count)):
        for c in range(classes):
            os.makedirs(f"{root}/{split}/c{c}", exist_ok=True)
            for i in range(n):
                pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(f"{root}/{split}/c{c}/{i:03d}.png")


def segmentation_folder(root, classes, size, count, generator):
    """A random segmentation-folder set: ROOT/test/images/*.png (RGB) and ROOT/test/masks/*.png
    (labels below `classes`, some 255)."""
    for kind in ("images", "masks"):
        os.makedirs(f"{root}/test/{kind}", exist_ok=True)
    for i in range(count):
        pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8).numpy()
        mask = torch.randint(0, classes, (size // 4, size // 4), generator=generator, dtype=torch.uint8)
        mask = mask.repeat_interleave(4, 0).repeat_interleave(4, 1)
        mask[torch.rand(mask.shape, generator=generator) < 0.05] = 255
        Image.fromarray(pixels).save(f"{root}/test/images/{i:03d}.png")
        Image.fromarray(mask.numpy()).save(f"{root}/test/masks/{i:03d}.png")


def reference_metrics(original, config, channels, classes, segmentation):
    original.eval()
    net = abn_torch.SegmentationLogits(original) if segmentation else original
    return abn_torch.data_format(config).evaluate(net, config, channels, classes, 0)


def check_load(folder):
    """abn checkpoints and exported BatchNorm files load into networks that compute the original's logits."""
    generator = torch.Generator().manual_seed(5)
    image_folder(f"{folder}/images", 3, 40, 6, generator)
    segmentation_folder(f"{folder}/scenes", 5, 48, 4, generator)
    cases = [  # (name, model section, channels, classes, data section)
        ("resnet18, 1 channel", {"arch": "resnet18"}, 1, 3,
         {"format": "image-folder", "root": f"{folder}/images", "channels": 1, "mean": 0.5, "std": 0.25}),
        ("resnet50, elu 0.5", {"arch": "resnet50", "activation": "elu", "activation_param": 0.5, "eps": 1e-4}, 3, 3,
         {"format": "image-folder", "root": f"{folder}/images", "mean": [0.4, 0.5, 0.6], "std": 0.3}),
        ("deeplabv3 resnet18, output stride 8", {"arch": "deeplabv3", "backbone": "resnet18", "output_stride": 8}, 3, 5,
         {"format": "segmentation-folder", "root": f"{folder}/scenes", "mean": 0.5, "std": 0.25}),
        ("deeplabv3 resnet50, output stride 16, head 64, dilations 1-2-3",
         {"arch": "deeplabv3", "backbone": "resnet50", "output_stride": 16, "head_width": 64, "aspp_dilations": [1, 2, 3]}, 3, 5,
         {"format": "segmentation-folder", "root": f"{folder}/scenes", "mean": 0.5, "std": 0.25}),
    ]
    for name, model, channels, classes, data in cases:
        config = {"model": model, "data": data}
        segmentation = model["arch"] == "deeplabv3"
        torch.manual_seed(6)
        if segmentation:
            original = tvn.deeplabv3(model["backbone"], classes, model["output_stride"], model.get("aspp_dilations"),
                                     model.get("head_width", 256))
        else:
            original = tvn.resnet(model["arch"], classes, in_channels=channels)
        eps = model.get("eps", EPS)
        tvn.randomize_norms(original, generator)
        abn_norms(original, eps)
        tvn.set_activation(original, model.get("activation", "leaky_relu"), model.get("activation_param", 0.01))
        original.eval()
        tensors = abn_tensors(original, eps, generator)
        path = f"{folder}/abn.safetensors"
        write_abn_checkpoint(path, tensors, config, step=11)
        read, metadata = abn_torch.read_safetensors(path)
        net, got_channels, got_classes, got_segmentation = abn_torch.network_for_checkpoint(read, metadata, config)
        assert (got_channels, got_classes, got_segmentation) == (channels, classes, segmentation)
        x = torch.randn(2, channels, 57, 50, generator=generator)
        with torch.no_grad():
            expected = original(x)
            expected = expected["out"] if segmentation else expected
            error = ((net(x) - expected).abs().max() / expected.abs().max()).item()
        assert error < 1e-5, (name, error)
        reference = reference_metrics(original, config, channels, classes, segmentation)
        config_path = f"{folder}/config.yaml"
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        loaded = run("load", "--checkpoint", path, "--config", config_path)
        stored = run("load", path)  # the config the checkpoint stores
        for line in (loaded, stored):
            assert line["step"] == 11 and line["samples"] == reference["samples"]
            assert abs(line["test_loss"] - reference["test_loss"]) <= 1e-5 * abs(reference["test_loss"]), (name, line, reference)
            assert abs(line["test_accuracy"] - reference["test_accuracy"]) <= 1e-9, (name, line, reference)
        print(f"ok load of an abn checkpoint, {name}: logits within {error:.1e} (relative to the largest), "
              f"test loss {loaded['test_loss']:.6f} (original {reference['test_loss']:.6f}), accuracy {loaded['test_accuracy']:.4f}")

        # the same network as a BatchNorm file (weights as they are), as export writes one
        plain = f"{folder}/plain.safetensors"
        with torch.no_grad():
            for m in original.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.mul_(torch.where(torch.rand(m.weight.shape, generator=generator) < 0.25, -1.0, 1.0))
            expected = original(x)
            expected = expected["out"] if segmentation else expected
        safetensors.torch.save_file({k: v for k, v in original.state_dict().items() if not k.endswith("num_batches_tracked")},
                                    plain, metadata={"arch": model["arch"]})
        read, metadata = abn_torch.read_safetensors(plain)
        net = abn_torch.network_for_checkpoint(read, metadata, config)[0]
        with torch.no_grad():
            error = ((net(x) - expected).abs().max() / expected.abs().max()).item()
        assert error < 1e-5, (name, error)
        reference = reference_metrics(original, config, channels, classes, segmentation)
        line = run("load", "--checkpoint", plain, "--config", config_path)
        assert abs(line["test_loss"] - reference["test_loss"]) <= 1e-5 * abs(reference["test_loss"]), (name, line, reference)
        print(f"ok load of a BatchNorm file with negative weights, {name}: logits within {error:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="leave out resnet101 and deeplabv3_resnet101")
    args = parser.parse_args()
    torch.set_num_threads(2)
    archs = [a for a in tvn.ARCHS if not (args.quick and a.endswith("resnet101"))]
    with tempfile.TemporaryDirectory() as folder:
        check_dilation()
        check_same_as_torchvision(archs)
        check_export_random(archs, folder)
        check_export_pth(folder)
        check_load(folder)
    print("all checks passed")


if __name__ == "__main__":
    main()
