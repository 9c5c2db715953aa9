#!/usr/bin/python3
"""Writes tests/fixtures/golden_v1.safetensors: PyTorch's values for the core's key ops.

Run with Debian's Python, which has torch:

    /usr/bin/python3 scripts/make_golden.py [--out PATH]

For every case the file holds the inputs, the parameters, an upstream gradient `dy`, and the
outputs and gradients that torch autograd computes in float32. Tensors are named
"<case>.<tensor>" (e.g. "conv2d_stride2_pad1.dweight"); the file's "__metadata__" maps each case
name to a JSON string of its hyper-parameters, with an "op" field that says which layer or
function it exercises. tests/core/test_golden.cpp reads the file and compares the core with it.

The output is deterministic: a fixed seed, one thread, and a header written in a fixed order, so
running the script twice gives identical bytes (for a given torch version, which the metadata
records). Only torch, struct and json are used, so the safetensors format is written here:
an 8-byte little-endian header length, a JSON header padded with spaces to a multiple of 8, then
the raw little-endian data of each tensor in header order.

Bump VERSION (and the file name) when the meaning of the content changes: tensor names, layouts
or conventions, not merely new cases.
"""

import argparse
import json
import os
import struct

import torch
import torch.nn.functional as F

VERSION = "1"
SEED = 20240611
GENERATOR = "scripts/make_golden.py"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "golden_v%s.safetensors" % VERSION)


class Golden:
    """Collects named tensors and per-case metadata, then writes one safetensors file."""

    def __init__(self):
        self.tensors = []  # (name, tensor) in file order
        self.names = set()
        self.cases = {}  # case name -> hyper-parameters (dict)

    def case(self, name, params, **tensors):
        if name in self.cases:
            raise ValueError("duplicate case %r" % name)
        self.cases[name] = params
        for key, t in tensors.items():
            self.add("%s.%s" % (name, key), t)

    def add(self, name, t):
        if name in self.names:
            raise ValueError("duplicate tensor %r" % name)
        t = t.detach().contiguous()
        if t.dtype not in (torch.float32, torch.int32):
            raise TypeError("%s: dtype %s is neither float32 nor int32" % (name, t.dtype))
        self.names.add(name)
        self.tensors.append((name, t))

    def write(self, path):
        metadata = {
            "format": "effml-golden",
            "version": VERSION,
            "torch": torch.__version__,
            "generator": GENERATOR,
        }
        for name, params in self.cases.items():
            metadata[name] = json.dumps(params, sort_keys=True, separators=(",", ":"))

        header = {"__metadata__": metadata}
        blobs = []
        offset = 0
        for name, t in self.tensors:
            values = t.reshape(-1).tolist()
            if t.dtype == torch.float32:
                dtype, blob = "F32", struct.pack("<%df" % len(values), *values)
            else:
                dtype, blob = "I32", struct.pack("<%di" % len(values), *values)
            header[name] = {
                "dtype": dtype,
                "shape": list(t.shape),
                "data_offsets": [offset, offset + len(blob)],
            }
            blobs.append(blob)
            offset += len(blob)

        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 8)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, path)
        return 8 + len(text) + offset


def leaf(t):
    """A float32 leaf tensor that records its gradient."""
    return t.detach().to(torch.float32).clone().requires_grad_(True)


def distinct(shape, scale=0.01):
    """Values that are all different (a shuffled ramp, centred on 0), so max pooling has no
    ties; multiples of 1/100 around zero keep them well apart in float32."""
    n = 1
    for s in shape:
        n *= s
    ramp = torch.randperm(n).to(torch.float32) - n / 2.0
    return (ramp * scale).reshape(shape)


# ---- layers --------------------------------------------------------------------------------------


def conv2d_case(g, name, n, cin, cout, h, w, k, stride, padding, groups, bias):
    x = leaf(torch.randn(n, cin, h, w))
    weight = leaf(torch.randn(cout, cin // groups, k, k) * 0.3)
    b = leaf(torch.randn(cout)) if bias else None
    y = F.conv2d(x, weight, b, stride=stride, padding=padding, groups=groups)
    dy = torch.randn(y.shape)
    y.backward(dy)
    params = {
        "op": "conv2d",
        "in_channels": cin,
        "out_channels": cout,
        "kernel_size": k,
        "stride": stride,
        "padding": padding,
        "groups": groups,
        "bias": bias,
    }
    tensors = dict(x=x, weight=weight, dy=dy, y=y, dx=x.grad, dweight=weight.grad)
    if bias:
        tensors.update(bias=b, dbias=b.grad)
    g.case(name, params, **tensors)


def pool_case(g, name, op, n, c, h, w, k, stride, padding):
    x = leaf(distinct((n, c, h, w)))
    if op == "max_pool2d":
        y = F.max_pool2d(x, k, stride=stride, padding=padding)
    else:
        y = F.avg_pool2d(x, k, stride=stride, padding=padding, count_include_pad=True)
    dy = torch.randn(y.shape)
    y.backward(dy)
    params = {"op": op, "kernel_size": k, "stride": stride, "padding": padding}
    if op == "avg_pool2d":
        params["count_include_pad"] = True
    g.case(name, params, x=x, dy=dy, y=y, dx=x.grad)


def global_avg_pool_case(g, name, n, c, h, w):
    x = leaf(torch.randn(n, c, h, w))
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dy = torch.randn(y.shape)
    y.backward(dy)
    g.case(name, {"op": "global_avg_pool2d"}, x=x, dy=dy, y=y, dx=x.grad)


def batch_norm_train_case(g, name, n, c, h, w):
    eps, momentum = 1e-5, 0.1
    # Channels with different means and spreads, so normalization does something.
    shift = torch.randn(1, c, 1, 1) * 3.0
    scale = torch.rand(1, c, 1, 1) * 2.0 + 0.5
    x = leaf(torch.randn(n, c, h, w) * scale + shift)
    weight = leaf(torch.randn(c) * 0.5 + 1.0)
    bias = leaf(torch.randn(c) * 0.5)
    running_mean = torch.zeros(c)
    running_var = torch.ones(c)
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=True,
                     momentum=momentum, eps=eps)
    dy = torch.randn(y.shape)
    y.backward(dy)
    params = {"op": "batch_norm2d", "num_features": c, "eps": eps, "momentum": momentum,
              "training": True, "running_mean_init": 0.0, "running_var_init": 1.0}
    g.case(name, params, x=x, weight=weight, bias=bias, dy=dy, y=y, dx=x.grad,
           dweight=weight.grad, dbias=bias.grad, running_mean=running_mean,
           running_var=running_var)


def batch_norm_eval_case(g, name, n, c, h, w):
    eps = 1e-5
    x = leaf(torch.randn(n, c, h, w) * 2.0 + 0.5)
    weight = leaf(torch.randn(c) * 0.5 + 1.0)
    bias = leaf(torch.randn(c) * 0.5)
    running_mean = torch.randn(c)
    running_var = torch.rand(c) * 3.0 + 0.2
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=eps)
    dy = torch.randn(y.shape)
    y.backward(dy)
    params = {"op": "batch_norm2d", "num_features": c, "eps": eps, "momentum": 0.1,
              "training": False}
    g.case(name, params, x=x, weight=weight, bias=bias, running_mean=running_mean,
           running_var=running_var, dy=dy, y=y, dx=x.grad, dweight=weight.grad,
           dbias=bias.grad)


def relu_case(g, name, shape):
    # No exact zeros in x: ReLU's derivative at 0 is a convention, not a value to pin.
    x = leaf(distinct(shape, scale=0.05) + 0.025)
    y = F.relu(x)
    dy = torch.randn(y.shape)
    y.backward(dy)
    g.case(name, {"op": "relu"}, x=x, dy=dy, y=y, dx=x.grad)


def linear_case(g, name, n, fin, fout, bias):
    x = leaf(torch.randn(n, fin))
    weight = leaf(torch.randn(fout, fin) * 0.4)
    b = leaf(torch.randn(fout)) if bias else None
    y = F.linear(x, weight, b)
    dy = torch.randn(y.shape)
    y.backward(dy)
    params = {"op": "linear", "in_features": fin, "out_features": fout, "bias": bias}
    tensors = dict(x=x, weight=weight, dy=dy, y=y, dx=x.grad, dweight=weight.grad)
    if bias:
        tensors.update(bias=b, dbias=b.grad)
    g.case(name, params, **tensors)


# ---- loss ----------------------------------------------------------------------------------------


def cross_entropy_case(g, name):
    n, c = 5, 7
    logits = torch.randn(n, c) * 2.0
    # Rows that overflow a naive exp(z) in float32 (e^89 > FLT_MAX): one dominant logit, a row of
    # large near-equal logits, and a large negative one next to a large positive one.
    logits[1, 3] = 80.0
    logits[2] = torch.tensor([80.0, 79.5, 81.0, 78.0, 80.25, 79.0, 80.5])
    logits[3, 0] = -80.0
    logits[3, 6] = 90.0
    logits = leaf(logits)
    # Row 1's label is not its large logit, so its loss is large and its probabilities saturate.
    labels = torch.tensor([2, 0, 2, 6, 4], dtype=torch.int32)
    loss = F.cross_entropy(logits, labels.to(torch.int64), reduction="mean")
    loss.backward()
    g.case(name, {"op": "cross_entropy", "reduction": "mean"}, logits=logits, labels=labels,
           loss=loss.detach().reshape(1), dlogits=logits.grad)


# ---- optimizers ----------------------------------------------------------------------------------


def optimizer_case(g, name, params, make):
    p = torch.randn(3, 5)
    grads = [torch.randn(3, 5) * s for s in (1.0, 0.1, 2.0)]
    w = p.clone().requires_grad_(True)
    opt = make([w])
    tensors = {"p0": p}
    for i, grad in enumerate(grads, start=1):
        opt.zero_grad()
        w.grad = grad.clone()
        opt.step()
        tensors["g%d" % i] = grad
        tensors["p%d" % i] = w.detach().clone()
    params = dict(params, steps=len(grads))
    g.case(name, params, **tensors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output file (default: %(default)s)")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    g = Golden()
    # Conv2d: odd sizes, H != W, every path (im2col with and without groups, depthwise, no bias).
    conv2d_case(g, "conv2d_stride1_pad0", 2, 4, 6, 7, 9, 3, 1, 0, 1, True)
    conv2d_case(g, "conv2d_stride2_pad1", 2, 4, 6, 7, 9, 3, 2, 1, 1, True)
    conv2d_case(g, "conv2d_groups2_pad1", 2, 4, 6, 7, 9, 3, 1, 1, 2, True)
    conv2d_case(g, "conv2d_depthwise_stride2", 2, 4, 4, 7, 9, 3, 2, 1, 4, True)
    conv2d_case(g, "conv2d_nobias_k5_pad2", 2, 3, 5, 7, 9, 5, 1, 2, 1, False)
    # Stride 3 leaves the last input row unread (dx is zero there); even kernel with padding.
    conv2d_case(g, "conv2d_stride3_k2_pad1", 3, 2, 3, 8, 7, 2, 3, 1, 1, True)
    conv2d_case(g, "conv2d_pointwise_nobias", 2, 5, 3, 6, 5, 1, 1, 0, 1, False)

    pool_case(g, "max_pool2d_k2_s2", "max_pool2d", 2, 3, 7, 9, 2, 2, 0)
    pool_case(g, "max_pool2d_k3_s2_p1", "max_pool2d", 2, 3, 7, 9, 3, 2, 1)
    pool_case(g, "avg_pool2d_k2_s2", "avg_pool2d", 2, 3, 7, 9, 2, 2, 0)
    pool_case(g, "avg_pool2d_k3_s1_p1", "avg_pool2d", 2, 3, 7, 9, 3, 1, 1)
    global_avg_pool_case(g, "global_avg_pool2d", 2, 5, 3, 4)

    batch_norm_train_case(g, "batch_norm2d_train", 4, 3, 5, 6)
    batch_norm_eval_case(g, "batch_norm2d_eval", 4, 3, 5, 6)

    relu_case(g, "relu", (4, 3, 5))
    linear_case(g, "linear", 5, 7, 4, True)
    linear_case(g, "linear_nobias", 3, 6, 5, False)

    cross_entropy_case(g, "cross_entropy")

    optimizer_case(
        g, "adam",
        {"op": "adam", "lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
         "weight_decay": 1e-2},
        lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                                    weight_decay=1e-2))
    optimizer_case(
        g, "sgd",
        {"op": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False},
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4))
    optimizer_case(
        g, "sgd_nesterov",
        {"op": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))

    size = g.write(args.out)
    print("wrote %s: %d cases, %d tensors, %d bytes" % (
        os.path.relpath(args.out), len(g.cases), len(g.tensors), size))


if __name__ == "__main__":
    main()
