"""torchvision's ResNet classifiers and DeepLabV3 networks as abn builds them, under torchvision's
state-dict names: `resnet18|34|50|101` (the ResNet with its fc head) and DeepLabV3 on a dilated
ResNet body with torchvision's ASPP head (`deeplabv3_resnet18|34|50|101`; torchvision itself has
no DeepLabV3 on resnet18 or resnet34 because its BasicBlock refuses dilation: here both 3x3
convolutions of a BasicBlock take the block's dilation, padding = dilation).

Also: torchvision checkpoint files fitted to these networks, the activation that replaces every
ReLU, random BatchNorm parameters and statistics (the test input of abn's converter), and
activation checkpointing of a DeepLabV3's body stages.
"""
import torch
import torch.nn as nn
import torch.utils.checkpoint
from torchvision.models import resnet as tv_resnet
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

BACKBONES = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet34": ("basic", [3, 4, 6, 3]),
             "resnet50": ("bottleneck", [3, 4, 6, 3]), "resnet101": ("bottleneck", [3, 4, 23, 3])}
ARCHS = list(BACKBONES) + [f"deeplabv3_{name}" for name in BACKBONES]
# torchvision's default class counts: ImageNet's and COCO-with-VOC-labels'
DEFAULT_CLASSES = {"classifier": 1000, "segmentation": 21}


class DilatedBasicBlock(tv_resnet.BasicBlock):
    """torchvision's BasicBlock whose two 3x3 convolutions are dilated by `dilation` (padding = dilation)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1, norm_layer=None):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, 1, norm_layer)
        for conv in (self.conv1, self.conv2):
            conv.dilation = conv.padding = (dilation, dilation)


def is_segmentation(arch):
    return arch.startswith("deeplabv3_")


def resnet(name, classes=1000, dilate=(False, False, False), in_channels=3, base_width=64):
    """torchvision's ResNet `name`; `dilate` replaces the stride of layer2..layer4 with dilation;
    `base_width` is the first stage's width (torchvision's 64; abn's model.base_width), the
    other stages doubling it."""
    kind, layers = BACKBONES[name]
    block = tv_resnet.Bottleneck if kind == "bottleneck" else DilatedBasicBlock
    net = tv_resnet.ResNet(block, layers, num_classes=classes, replace_stride_with_dilation=list(dilate))
    if in_channels != 3 or base_width != 64:
        net.conv1 = nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False)
    if base_width != 64:
        # torchvision fixes the width at 64: the stem's norm and the stages again at base_width
        net.bn1 = nn.BatchNorm2d(base_width)
        net.inplanes, net.dilation = base_width, 1
        net.layer1 = net._make_layer(block, base_width, layers[0])
        for i, name in enumerate(["layer2", "layer3", "layer4"]):
            setattr(net, name, net._make_layer(block, base_width << (i + 1), layers[i + 1], stride=2, dilate=dilate[i]))
        net.fc = nn.Linear(8 * base_width * block.expansion, classes)
    return net


def deeplabv3(backbone, classes, output_stride=8, dilations=None, head_width=256, in_channels=3, base_width=64):
    """DeepLabV3: a ResNet body at output stride 8 (layer3 and layer4 dilated) or 16 (layer4),
    torchvision's ASPP (a 1x1, three atrous 3x3 and a pooling branch, projected) of `head_width`
    channels, a 3x3 conv, BN, ReLU and the 1x1 classifier; returns {"out": logits at input size}."""
    if output_stride not in (8, 16):
        raise ValueError(f"output stride {output_stride}: torchvision's DeepLabV3 takes 8 or 16")
    dilations = list(dilations or ((12, 24, 36) if output_stride == 8 else (6, 12, 18)))
    body = resnet(backbone, dilate=(False, output_stride == 8, True), in_channels=in_channels, base_width=base_width)
    channels = 8 * base_width * (4 if BACKBONES[backbone][0] == "bottleneck" else 1)
    head = nn.Sequential(ASPP(channels, dilations, head_width),
                         nn.Conv2d(head_width, head_width, 3, padding=1, bias=False),
                         nn.BatchNorm2d(head_width), nn.ReLU(), nn.Conv2d(head_width, classes, 1))
    return DeepLabV3(IntermediateLayerGetter(body, {"layer4": "out"}), head)


def network(arch, classes, in_channels=3):
    """The network `arch` (one of ARCHS) at torchvision's defaults (DeepLabV3: output stride 8)."""
    if is_segmentation(arch):
        return deeplabv3(arch.removeprefix("deeplabv3_"), classes, in_channels=in_channels)
    return resnet(arch, classes, in_channels=in_channels)


def head_prefix(arch):
    """The prefix of the names of the layer sized by the class count."""
    return "classifier.4." if is_segmentation(arch) else "fc."


def read_torchvision_file(path):
    """The tensors of a torchvision checkpoint (.pth): a state dict, or one under "state_dict"
    or "model", with a leading "module." (DataParallel's) stripped."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {name.removeprefix("module."): value for name, value in state.items() if torch.is_tensor(value)}


def fit_state(arch, state, classes=None):
    """`arch`'s state dict (float32, without num_batches_tracked) filled from a torchvision one,
    and notes on what was not in it. `classes` sizes the head (default: the file's, else
    torchvision's default). The head takes torchvision's initialization (seeded with 0) when its
    size differs from the file's; for DeepLabV3, a classifier's file (ImageNet weights) becomes
    the backbone and the whole segmentation head is initialized. aux_classifier.* is dropped
    (the networks have no auxiliary head). Raises ValueError on any other missing, unknown or
    misshapen tensor."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") and not k.startswith("aux_classifier.")}
    notes, fresh_prefixes = [], [head_prefix(arch)]
    if is_segmentation(arch) and not any(k.startswith("backbone.") for k in state):
        state = {"backbone." + k: v for k, v in state.items() if not k.startswith("fc.")}
        fresh_prefixes.append("classifier.")
        notes.append("the file holds a classifier: its body becomes the backbone and the segmentation head is initialized")
    head_weight = state.get(head_prefix(arch) + "weight")
    classes = classes or (head_weight.shape[0] if head_weight is not None else DEFAULT_CLASSES["segmentation" if is_segmentation(arch) else "classifier"])
    conv1 = state.get(("backbone." if is_segmentation(arch) else "") + "conv1.weight")
    torch.manual_seed(0)
    net = network(arch, classes, in_channels=conv1.shape[1] if conv1 is not None else 3)
    fitted, initialized = {}, set()
    for name, initial in net.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        value = state.pop(name, None)
        if value is not None and value.shape == initial.shape:
            fitted[name] = value.float().contiguous()
        elif any(name.startswith(p) for p in fresh_prefixes):
            fitted[name] = initial
            initialized.add(name.rsplit(".", 1)[0])
        elif value is None:
            raise ValueError(f"the file has no tensor {name}: is it a {arch}?")
        else:
            raise ValueError(f"{name}: the file's shape {tuple(value.shape)} differs from {arch}'s {tuple(initial.shape)}")
    if state:
        raise ValueError(f"{arch} has no tensors {sorted(state)[:5]}{' ...' if len(state) > 5 else ''}: is the file a {arch}?")
    if head_weight is not None and head_weight.shape[0] != classes:
        notes.append(f"the file's head has {head_weight.shape[0]} classes, not {classes}: it is initialized")
    if initialized:
        notes.append("initialized: " + ", ".join(sorted(initialized)))
    return fitted, notes


def make_activation(name, param):
    """The module of an abn activation (relu too, for plain BatchNorm networks)."""
    if name == "leaky_relu":
        return nn.LeakyReLU(param, inplace=True)
    if name == "elu":
        return nn.ELU(param, inplace=True)
    if name == "identity":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {name}")


def set_activation(net, name, param):
    """Replaces every nn.ReLU in `net` (stem, blocks, after the residual add, ASPP, head) by the activation."""
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, make_activation(name, param))
    return net


@torch.no_grad()
def randomize_norms(net, generator):
    """Random BatchNorm parameters and statistics: weights of magnitude 0.25 to 1.25, about a
    quarter negative and about 0.2% below 1e-5 in magnitude (at least one per network), biases
    N(0, 0.1), running means N(0, 0.1), running variances 0.5 to 1.5."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        c = m.num_features
        magnitude = 0.25 + torch.rand(c, generator=generator)
        tiny = torch.rand(c, generator=generator) < 0.002
        magnitude = torch.where(tiny, 1e-5 * torch.rand(c, generator=generator), magnitude)
        sign = torch.where(torch.rand(c, generator=generator) < 0.25, -1.0, 1.0)
        m.weight.copy_(sign * magnitude)
        m.bias.copy_(0.1 * torch.randn(c, generator=generator))
        m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
        m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
    norms[0].weight[0] = -3e-6


class Checkpointed(nn.Module):
    """Runs `inner` under torch.utils.checkpoint: its activations are recomputed in backward."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.utils.checkpoint.checkpoint(self.inner, x, use_reentrant=False)


def checkpoint_stages(deeplab):
    """Puts layer1..layer4 of a DeepLabV3's body under torch.utils.checkpoint."""
    for name in ("layer1", "layer2", "layer3", "layer4"):
        deeplab.backbone[name] = Checkpointed(deeplab.backbone[name])
    return deeplab
