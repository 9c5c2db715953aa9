#!/usr/bin/python3
"""bench_torch: the PyTorch counterpart of bench_core, for a fair comparison.

Measures, for the same model, batch size and thread count as bench_core:
  (a) the training time on Fashion-MNIST's training images: SGD with momentum, a constant learning
      rate, a fresh random order of the timed images, a few untimed warm-up batches first, and
      the same per-batch work as effml::train (finite-logits check, loss, backward, step, running
      loss and accuracy). `--images N` times the first N images and scales to the 60,000 of an
      epoch;
  (b) the batch-1 latency in evaluation mode under torch.no_grad(): the median of many repeats,
      each timed on its own, after untimed warm-up calls, as effml::measure_latency does.

The models are written here to match core/src/models.cpp layer for layer (same names, channels,
kernel sizes, padding, bias-free convolutions followed by batch norm in `vgg`), initialised as
effml::init_kaiming (Kaiming normal, fan-in, ReLU gain; zero biases). The data are read from the
same IDX files with gzip and numpy and normalised as effml::load_fashion_mnist does.

Prints one JSON object on stdout. Run with /usr/bin/python3 (Debian's python3-torch).
"""

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Normalisation of effml::load_fashion_mnist (kFashionMnistMean, kFashionMnistStd in data.h).
MEAN, STD = 0.2860, 0.3530


def read_idx(path, expected_magic):
    """An IDX file of unsigned bytes (gzip-compressed or not) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected_magic:
        sys.exit(f"{path}: magic number {magic}, expected {expected_magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"{path}: {data.size} bytes of data, the header promises {dims}")
    return data.reshape(dims)


def load_fashion_mnist_train(folder):
    """Images (60000, 1, 28, 28) float32 normalised, labels (60000) int64."""
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
        sys.exit(f"{folder}: no {stem}(.gz); install Debian's dataset-fashion-mnist")
    images = read_idx(find("train-images-idx3-ubyte"), 2051)
    labels = read_idx(find("train-labels-idx1-ubyte"), 2049)
    x = (images.astype(np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    x = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, 28, 28)))
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def make_lenet300():
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(784, 300)),
        ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(300, 100)),
        ("relu2", nn.ReLU()),
        ("fc3", nn.Linear(100, 10)),
    ]))


def make_lenet5():
    features = nn.Sequential(
        nn.Conv2d(1, 6, 5, stride=1, padding=2),  # (N,1,28,28) -> (N,6,28,28)
        nn.ReLU(),
        nn.MaxPool2d(2),                          # -> (N,6,14,14)
        nn.Conv2d(6, 16, 5),                      # -> (N,16,10,10)
        nn.ReLU(),
        nn.MaxPool2d(2),                          # -> (N,16,5,5)
    )
    classifier = nn.Sequential(
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )
    return nn.Sequential(OrderedDict([
        ("features", features), ("flatten", nn.Flatten()), ("classifier", classifier)]))


def make_vgg():
    cfg = [16, "M", 32, "M", 64, 64, "M"]
    layers, channels, size = [], 1, 28
    for c in cfg:
        if c == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
            continue
        layers += [nn.Conv2d(channels, c, 3, stride=1, padding=1, bias=False),
                   nn.BatchNorm2d(c), nn.ReLU()]
        channels = c
    return nn.Sequential(OrderedDict([
        ("features", nn.Sequential(*layers)),
        ("flatten", nn.Flatten()),
        ("classifier", nn.Linear(channels * size * size, 10)),
    ]))


MODELS = {"lenet300": make_lenet300, "lenet5": make_lenet5, "vgg": make_vgg}


def make_model(name, seed):
    """The model with effml::init_kaiming's initialisation (values differ, distributions match)."""
    torch.manual_seed(seed)
    model = MODELS[name]()
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    return model


def train_pass(model, x_all, y_all, args, seed):
    """One pass over (x_all, y_all) as effml::train's epoch.

    Returns (wall seconds, process CPU seconds of all threads, mean loss, accuracy).

    As in effml::train, the optimizer is new for the call, the random order is drawn before the
    clock starts, and the clock covers the batches only.
    """
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    n = x_all.shape[0]
    order = torch.randperm(n, generator=gen)
    loss_sum, correct, seen = 0.0, 0, 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for start in range(0, n, args.batch_size):
        idx = order[start:start + args.batch_size]
        x = x_all.index_select(0, idx)
        y = y_all.index_select(0, idx)
        opt.zero_grad()
        logits = model(x)
        if not bool(torch.isfinite(logits).all()):
            sys.exit(f"the logits became NaN or infinite at batch {start // args.batch_size + 1}")
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        b = y.shape[0]
        loss_sum += loss.item() * b
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += b
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return seconds, cpu, loss_sum / seen, correct / seen


def bench_train(model, x, y, args):
    epoch_images = x.shape[0]
    n = min(args.images, epoch_images) if args.images > 0 else epoch_images
    warm = min(epoch_images, args.warmup_batches * args.batch_size)
    if warm > 0:
        train_pass(model, x[:warm], y[:warm], args, args.seed)
    seconds, cpu, loss, acc = train_pass(model, x[:n], y[:n], args, args.seed)
    return {"images_timed": n, "epoch_images": epoch_images, "warmup_images": warm,
            "seconds_timed": seconds, "cpu_seconds_timed": cpu, "seconds_per_epoch": seconds * epoch_images / n,
            "images_per_second": n / seconds, "train_loss": loss, "train_accuracy": acc}


def bench_latency(model, x, args):
    model.eval()
    one = x[0:1].clone()  # (1, 1, 28, 28)
    ms = []
    with torch.no_grad():
        for _ in range(args.latency_warmup):
            model(one)
        for _ in range(args.latency_repeats):
            t0 = time.perf_counter()
            model(one)
            ms.append((time.perf_counter() - t0) * 1e3)
    model.train()
    ms.sort()
    r = args.latency_repeats
    return {"median_ms": statistics.median(ms), "min_ms": ms[0],
            "p90_ms": ms[min(r - 1, int(0.9 * r))], "repeats": r, "warmup": args.latency_warmup}


def parallel_summary():
    """The lines of torch.__config__.parallel_info() that say how many threads run what."""
    keep = ("at::get_num_threads", "at::get_num_interop_threads", "omp_get_max_threads",
            "ATen parallel backend", "MKL", "OMP_NUM_THREADS")
    lines = [ln.strip() for ln in torch.__config__.parallel_info().splitlines()]
    return [ln for ln in lines if ln.startswith(keep)]


def blas_info():
    """PyTorch's BLAS_INFO build setting ("generic": the system's libblas.so.3)."""
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="lenet300", choices=sorted(MODELS))
    p.add_argument("--batch-size", "-b", type=int, default=64)
    p.add_argument("--threads", "-t", type=int, default=1)
    p.add_argument("--images", type=int, default=0,
                   help="time the first N training images and scale to the epoch (0 = all)")
    p.add_argument("--warmup-batches", type=int, default=5)
    p.add_argument("--latency-warmup", type=int, default=50)
    p.add_argument("--latency-repeats", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--data-dir", default=os.environ.get("EFFML_FASHION_MNIST_DIR") or
                   "/usr/share/datasets/fashion-mnist")
    args = p.parse_args()

    # Both before any parallel work: PyTorch fixes its inter-op pool at first use. One inter-op
    # thread, as effml has no inter-op parallelism; n intra-op threads, as bench_core --threads n.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    x, y = load_fashion_mnist_train(args.data_dir)
    model = make_model(args.model, args.seed)
    out = {
        "framework": "torch",
        "torch_version": torch.__version__,
        "model": args.model,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "optimizer": {"name": "sgd", "lr": args.lr, "momentum": args.momentum,
                      "weight_decay": args.weight_decay},
        "warmup_batches": args.warmup_batches,
        "parallel_info": parallel_summary(),
        "blas_info": blas_info(),
        "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    }
    if not args.skip_train:
        out["train"] = bench_train(model, x, y, args)
    if not args.skip_latency:
        out["latency"] = bench_latency(model, x, args)
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
