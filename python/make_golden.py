"""Writes the golden InPlace-ABN cases of Tests/Fixtures/golden (format: that folder's README.md).

Each case is a training (or eval) step of one InPlace-ABN layer written out from its
definition and differentiated by PyTorch autograd in float64; inputs are drawn in float32 so
that the Swift test reads them exactly. Usage: python python/make_golden.py [OUT_DIR]
(needs torch; the default OUT_DIR is Tests/Fixtures/golden).
"""
import json
import os
import sys

import torch

LAYOUT = "NCHW (or NC for rank-2 shapes), row-major"


def activate(y, name, param):
    """The layer's activation on y (float64)."""
    if name == "leaky_relu":
        return torch.where(y >= 0, y, y * param)
    if name == "elu":
        return torch.where(y >= 0, y, param * torch.expm1(torch.clamp(y, max=0)))
    if name == "identity":
        return y
    raise ValueError(f"unknown activation {name}")


def inplace_abn(x, weight, bias, running_mean, running_var, activation, param, eps, momentum, training):
    """z, new running mean, new running var of InPlace-ABN (reference semantics)."""
    reduce_dims = [d for d in range(x.dim()) if d != 1]
    view = [1, -1] + [1] * (x.dim() - 2)
    gamma = weight.abs() + eps
    if training:
        count = x.numel() // x.shape[1]
        mean = x.mean(dim=reduce_dims)
        var = ((x - mean.view(view)) ** 2).mean(dim=reduce_dims)  # biased, two-pass
        new_mean = (1 - momentum) * running_mean + momentum * mean.detach()
        new_var = (1 - momentum) * running_var + momentum * var.detach() * count / (count - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    y = (x - mean.view(view)) / torch.sqrt(var.view(view) + eps) * gamma.view(view) + bias.view(view)
    return activate(y, activation, param), new_mean, new_var


def make_case(name, description, shape, seed, activation="leaky_relu", param=0.01, eps=1e-5,
              momentum=0.1, training=True, x_mean=0.0, x_scale=1.0, negative_weights=False,
              rtol=1e-4, atol=1e-4):
    gen = torch.Generator().manual_seed(seed)

    def draw(size, scale=1.0, shift=0.0, uniform=False):
        t = torch.rand(size, generator=gen) if uniform else torch.randn(size, generator=gen)
        return (t * scale + shift).float().double()  # float32-representable

    channels = shape[1]
    x = draw(shape, x_scale, x_mean)
    magnitude = draw(channels, 1.0, 0.2, uniform=True)  # |weight| in [0.2, 1.2): away from the kink at 0
    signs = torch.ones(channels, dtype=torch.float64)
    if negative_weights:
        signs[::2] = -1
    weight = magnitude * signs
    bias = draw(channels, 0.5)
    running_mean = draw(channels, 0.1)
    running_var = draw(channels, 1.0, 0.5, uniform=True)
    dz = draw(shape)

    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    z, new_mean, new_var = inplace_abn(*leaves, running_mean.clone(), running_var.clone(),
                                       activation, param, eps, momentum, training)
    (z * dz).sum().backward()
    dx, dweight, dbias = (t.grad for t in leaves)

    def flat(t):
        return [float(v) for v in t.detach().reshape(-1).tolist()]

    return {
        "name": name, "description": description, "layout": LAYOUT,
        "activation": activation, "activation_param": param, "eps": eps, "momentum": momentum,
        "training": training, "shape": list(shape),
        "x": flat(x), "weight": flat(weight), "bias": flat(bias),
        "running_mean_in": flat(running_mean), "running_var_in": flat(running_var), "dz": flat(dz),
        "z": flat(z), "dx": flat(dx), "dweight": flat(dweight), "dbias": flat(dbias),
        "running_mean_out": flat(new_mean), "running_var_out": flat(new_var),
        "tolerance": {"rtol": rtol, "atol": atol},
    }


CASES = [
    dict(name="leaky_relu_4x3x5x5", description="leaky ReLU slope 0.01, training", shape=(4, 3, 5, 5), seed=11),
    dict(name="leaky_relu_slope02_negative_weights_3x4x6x5", shape=(3, 4, 6, 5), seed=12, param=0.2,
         negative_weights=True, momentum=0.3,
         description="leaky ReLU slope 0.2, every other weight negative (gamma' = |w| + eps, dweight signed), momentum 0.3"),
    dict(name="elu_2x4x3x3", description="ELU alpha 1.0, training", shape=(2, 4, 3, 3), seed=13,
         activation="elu", param=1.0),
    dict(name="elu_alpha05_3x2x7x6", description="ELU alpha 0.5, negative weights", shape=(3, 2, 7, 6), seed=14,
         activation="elu", param=0.5, negative_weights=True),
    dict(name="identity_3x2x4x4", description="no activation, training", shape=(3, 2, 4, 4), seed=15,
         activation="identity", param=0.0),
    dict(name="leaky_relu_nc_8x6", description="rank-2 input (after a linear layer)", shape=(8, 6), seed=16),
    dict(name="leaky_relu_eval_2x3x4x4", description="eval mode: running statistics normalize, nothing is updated",
         shape=(2, 3, 4, 4), seed=17, training=False),
    dict(name="elu_eval_2x3x3x5", description="eval mode with ELU", shape=(2, 3, 3, 5), seed=18,
         activation="elu", param=1.0, training=False),
    dict(name="leaky_relu_offset_2x3x9x11", shape=(2, 3, 9, 11), seed=19, x_mean=200.0, x_scale=0.5,
         description="inputs of mean 200 and std 0.5: the variance must be computed stably (E[x^2] - E[x]^2 in float32 is off by percents)"),
    dict(name="leaky_relu_eps1e-3_1x5x16x17", description="one image, eps 1e-3, odd plane of 272 values",
         shape=(1, 5, 16, 17), seed=20, eps=1e-3),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "Tests", "Fixtures", "golden")
    os.makedirs(out, exist_ok=True)
    for spec in CASES:
        case = make_case(**spec)
        with open(os.path.join(out, case["name"] + ".json"), "w") as f:
            json.dump(case, f)
    print(f"{len(CASES)} cases written to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
