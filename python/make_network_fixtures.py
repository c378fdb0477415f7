"""Writes Tests/Fixtures/torchvision: torchvision's parameter names and shapes, and training
steps of small torchvision networks differentiated by PyTorch in float64.

names.json: for each architecture abn builds in torchvision's layout, torchvision's state-dict
names and shapes (without num_batches_tracked), in state-dict order.

STEP.safetensors: one training step of a narrow torchvision network (ResNet-18, ResNet-50 or
DeepLabV3 over ResNet-50) whose BN + ReLU pairs are InPlace-ABN layers with ELU (alpha 1, smooth
at 0, so float32 rounding near 0 cannot change a derivative by much): every ReLU of the network
becomes ELU(1), and each BN weight is |w| + eps of the abn weight stored. Dropout is 0. Tensors:
`input` (N, 3, H, W); `probe` (the logits' shape: the loss is sum(logits * probe)); every abn
parameter under its name; `want.logits`, `want.grad.NAME` and `want.after.NAME` (running
statistics after the step); all float32 (the float64 results rounded); and `floor.KEY` for
every `want.KEY`: the largest |difference| between the same step in float32 and in float64,
PyTorch's own float32 rounding error, the yardstick of the Swift test. Usage:
python python/make_network_fixtures.py [OUT_DIR] (needs torch, torchvision and safetensors).
"""
import copy
import json
import os
import sys

import torch
import torchvision

import torchvision_nets
from safetensors.torch import save_file

EPS = 1e-5


def state_names(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def names():
    seg = torchvision.models.segmentation
    models = {
        "resnet18": torchvision.models.resnet18(num_classes=10),
        "resnet34": torchvision.models.resnet34(num_classes=10),
        "resnet50": torchvision.models.resnet50(num_classes=10),
        "resnet101": torchvision.models.resnet101(num_classes=10),
        "deeplabv3_resnet50": seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=False),
        "deeplabv3_resnet101": seg.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=False),
    }
    return {k: state_names(m) for k, m in models.items()}


def narrow_resnet(depth, base, classes, dilate=None):
    """torchvision's ResNet with stage widths base, 2 base, 4 base, 8 base."""
    return torchvision_nets.resnet(depth, classes, dilate=dilate or (False, False, False), base_width=base)


def abn_semantics(model, gen):
    """ReLU -> ELU(1); BN weight = |w| + eps with w the abn weight drawn here; random statistics."""
    abn_weights = {}
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, child_name, torch.nn.ELU(1.0))
            if isinstance(child, torch.nn.Dropout):
                child.p = 0.0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            w = (torch.rand(c, generator=gen) + 0.3).float()
            abn_weights[name + ".weight"] = w.clone()
            module.weight.data = w.double() + EPS
            module.bias.data = (torch.randn(c, generator=gen) * 0.2).float().double()
            module.running_mean.data = (torch.randn(c, generator=gen) * 0.1).float().double()
            module.running_var.data = (torch.rand(c, generator=gen) + 0.5).float().double()
            module.eps = EPS
            module.momentum = 0.1
    return abn_weights


def results(model, x, probe, logits_of):
    """The logits, parameter gradients and running statistics of one training step."""
    logits = logits_of(model, x)
    (logits * probe).sum().backward()
    out = {"logits": logits.detach()}
    for k, p in model.named_parameters():  # d(|w| + eps)/dw is 1 for the positive abn weights drawn
        out["grad." + k] = p.grad
    for k, v in model.state_dict().items():
        if "running" in k:
            out["after." + k] = v
    return out


def step(model, x, logits_of, gen):
    """One training step in float64 and in float32; the tensors the Swift test reads."""
    model.double().train()
    abn_weights = abn_semantics(model, gen)
    for p in model.parameters():
        p.data = p.data.float().double()  # float32-representable
    out = {k: abn_weights.get(k, v).float() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    single = copy.deepcopy(model).float()
    with torch.no_grad():
        probe = torch.randn(logits_of(copy.deepcopy(model).eval(), x).shape, generator=gen).float().double()
    want = results(model, x, probe, logits_of)
    got = results(single, x.float(), probe.float(), logits_of)
    out["input"] = x.float()
    out["probe"] = probe.float()
    for k, v in want.items():
        out["want." + k] = v.float()
        out["floor." + k] = (got[k].double() - v).abs().max().reshape(1).float()
    return {k: v.contiguous() for k, v in out.items()}


def main(argv):
    out_dir = argv[0] if argv else os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "torchvision")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "names.json"), "w") as f:
        json.dump(names(), f, indent=0, separators=(",", ":"))
    torch.manual_seed(7)  # the modules' initial weights
    gen = torch.Generator().manual_seed(7)
    x = (torch.randn(2, 3, 37, 35, generator=gen)).float().double()

    classify = lambda m, x: m(x)
    save_file(step(narrow_resnet("resnet18", 4, 5), x, classify, gen), os.path.join(out_dir, "resnet18_w4.safetensors"))
    save_file(step(narrow_resnet("resnet50", 2, 5), x, classify, gen), os.path.join(out_dir, "resnet50_w2.safetensors"))

    # DeepLabV3 at output stride 8 with an ASPP and head of width 4
    body = narrow_resnet("resnet50", 2, 5, dilate=[False, True, True])
    seg = torchvision.models.segmentation.deeplabv3
    aspp = seg.ASPP(body.fc.in_features, [12, 24, 36], out_channels=4)
    classifier = torch.nn.Sequential(aspp, torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                     torch.nn.Conv2d(4, 5, 1))
    backbone = torchvision.models._utils.IntermediateLayerGetter(body, return_layers={"layer4": "out"})
    model = seg.DeepLabV3(backbone, classifier, None)
    deeplab = lambda m, x: m.classifier(m.backbone(x)["out"])  # logits at the output stride, before resizing
    save_file(step(model, x, deeplab, gen), os.path.join(out_dir, "deeplabv3_resnet50_w2.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1:])
