#!/usr/bin/python3
"""Draws the figures of the Lab 1 (pruning) page from the dense VGG of the lab.

    /usr/bin/python3 docs/images/lab1/make_figures.py [--model PATH] [--out DIR]

Reads labs/lab1_pruning/vgg_dense.safetensors (safetensors: an 8-byte little-endian header
length, a JSON header, then the raw little-endian tensors) with numpy only, and writes into
docs/images/lab1/:

  lab1_weight_histograms.svg  the weights of the five prunable layers, with the magnitude
                              threshold of 70% fine-grained sparsity marked
  lab1_channel_pruning.svg    channel pruning of features.4 at ratio 0.3: the importance of
                              its output channels (read from features.8's input channels),
                              before and after sorting, and what is sliced
  lab1_storage_formats.svg    size of the VGG against sparsity in the bitmask and CSR formats,
                              and the sparsity a 25% size budget needs

It needs numpy and matplotlib (Debian: python3-numpy, python3-matplotlib). The SVG files are
deterministic: the same model gives the same bytes. It also prints the figures it plots.
"""

import argparse
import json
import os
import struct

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib import patches  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# The prunable weights of make_vgg() (two or more dimensions), in named_parameters() order.
PRUNABLE = ["features.0.weight", "features.4.weight", "features.8.weight",
            "features.11.weight", "classifier.weight"]
SHORT = {"features.0.weight": "conv1 (features.0)", "features.4.weight": "conv2 (features.4)",
         "features.8.weight": "conv3 (features.8)", "features.11.weight": "conv4 (features.11)",
         "classifier.weight": "classifier"}

BLUE, ORANGE, GREY = "#1f6fb4", "#e07b00", "#b0b0b0"


def read_safetensors(path):
    """name -> numpy array for every float32/int32 tensor of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    header.pop("__metadata__", None)
    dtypes = {"F32": "<f4", "I32": "<i4"}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in dtypes:
            continue
        begin, end = info["data_offsets"]
        data = blob[8 + header_len + begin:8 + header_len + end]
        tensors[name] = np.frombuffer(data, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return tensors


def threshold(w, sparsity):
    """The z-th smallest magnitude, z = round(numel * sparsity) (halves away from zero)."""
    mags = np.sort(np.abs(w).ravel())
    z = int(np.floor(mags.size * sparsity + 0.5))
    return mags[z - 1] if z > 0 else -1.0


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    # No date and fixed element ids: regenerating from the same model gives the same file.
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    print("wrote", os.path.relpath(path, REPO))


def weight_histograms(t, out_dir):
    sparsity = 0.7
    fig, axes = plt.subplots(1, 5, figsize=(14, 2.9))
    print("weight distributions (dense VGG):")
    for ax, name in zip(axes, PRUNABLE):
        w = t[name].astype(np.float64).ravel()
        thr = threshold(w, sparsity)
        lim = np.abs(w).max()
        bins = np.linspace(-lim, lim, 61)
        ax.hist(w, bins=bins, color=BLUE, edgecolor="none")
        ax.axvspan(-thr, thr, color=ORANGE, alpha=0.25, lw=0)
        ax.axvline(-thr, color=ORANGE, lw=1)
        ax.axvline(thr, color=ORANGE, lw=1)
        ax.set_title("%s\n%s, %s weights" % (SHORT[name], "x".join(map(str, t[name].shape)),
                                              format(w.size, ",")), fontsize=9)
        ax.set_xlabel("weight value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.text(0.03, 0.95, "std %.3f\n70%% have\n|w| <= %.3f" % (w.std(), thr),
                transform=ax.transAxes, fontsize=7, va="top",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1))
        kurt = ((w - w.mean()) ** 4).mean() / w.var() ** 2
        print("  %-20s n=%6d mean %+.4f std %.4f median|w| %.4f kurtosis %.2f "
              "70%%-threshold %.4f (%.2f std)"
              % (name, w.size, w.mean(), w.std(), np.median(np.abs(w)), kurt, thr, thr / w.std()))
    axes[0].set_ylabel("weights per bin", fontsize=8)
    fig.suptitle("Weights of the dense VGG; shaded: the 70% of smallest magnitude, which "
                 "fine-grained pruning at sparsity 0.7 sets to zero", fontsize=10, y=1.08)
    save(fig, out_dir, "lab1_weight_histograms.svg")


def keep_count(channels, ratio):
    return max(1, int(np.floor(channels * (1.0 - ratio) + 0.5)))


def channel_pruning(t, out_dir):
    ratio = 0.3
    conv = t["features.4.weight"]   # (32, 16, 3, 3): the conv whose outputs are pruned
    nxt = t["features.8.weight"]    # (64, 32, 3, 3): the conv that reads them
    C = conv.shape[0]
    keep = keep_count(C, ratio)
    importance = np.sqrt((nxt.astype(np.float64) ** 2).sum(axis=(0, 2, 3)))
    order = np.argsort(-importance, kind="stable")
    kept = np.zeros(C, dtype=bool)
    kept[order[:keep]] = True
    print("channel pruning of features.4 at ratio %.1f: keep %d of %d; importance %.3f .. %.3f; "
          "kept importance %.1f%% of the squared total"
          % (ratio, keep, C, importance.min(), importance.max(),
             100 * (importance[kept] ** 2).sum() / (importance ** 2).sum()))

    fig = plt.figure(figsize=(14, 3.6))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5], wspace=0.25)
    ax = fig.add_subplot(grid[0])
    ax.bar(np.arange(C), importance, color=[BLUE if k else GREY for k in kept], width=0.8)
    ax.set_title("(a) importance of conv2's 32 output channels,\nas stored "
                 "(blue: the %d most important)" % keep, fontsize=9)
    ax.set_xlabel("channel index", fontsize=8)
    ax.set_ylabel(r"$\|W^{(3)}_{:,c,:,:}\|_F$", fontsize=9)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(grid[1])
    ax.bar(np.arange(C), importance[order], color=[BLUE] * keep + [GREY] * (C - keep), width=0.8)
    ax.axvline(keep - 0.5, color=ORANGE, lw=1.5, ls="--")
    ax.text(keep + 0.2, importance.max() * 1.04, "keep round(32 x 0.7) = %d" % keep,
            fontsize=8, color=ORANGE, ha="center",
            bbox=dict(facecolor="white", edgecolor="none", pad=1))
    ax.set_ylim(0, importance.max() * 1.12)
    ax.set_title("(b) after sorting: pruning keeps the first %d" % keep, fontsize=9)
    ax.set_xlabel("position after sorting", fontsize=8)
    ax.tick_params(labelsize=7)

    ax = fig.add_subplot(grid[2])
    ax.set_xlim(0, 12)
    ax.set_ylim(-0.8, 10.4)
    ax.axis("off")
    ax.set_title("(c) what is sliced (the same %d channels everywhere)" % keep, fontsize=9)
    cell = 8.0 / C  # height of one channel

    def column(x, width, label, sub):
        for c in range(C):
            y = 9.0 - (c + 1) * cell
            color = BLUE if c < keep else GREY
            ax.add_patch(patches.Rectangle((x, y), width, cell, facecolor=color,
                                           edgecolor="white", lw=0.3))
        ax.text(x + width / 2, 9.25, label, ha="center", fontsize=8)
        ax.text(x + width / 2, 0.55, sub, ha="center", va="top", fontsize=7)

    column(0.2, 1.4, "conv2 weight", "(32, 16, 3, 3)\nrows = output\nchannels")
    column(3.2, 0.5, "BN of conv2", "4 x (32): weight,\nbias, running\nmean, var")
    # The next conv: 64 output rows by 32 input columns; the columns are sliced.
    x0, width = 5.4, 6.2
    colw = width / C
    for c in range(C):
        ax.add_patch(patches.Rectangle((x0 + c * colw, 1.0), colw, 8.0,
                                       facecolor=BLUE if c < keep else GREY,
                                       edgecolor="white", lw=0.3))
    ax.text(x0 + width / 2, 9.25, "conv3 weight", ha="center", fontsize=8)
    ax.text(x0 + width / 2, 0.55, "(64, 32, 3, 3): columns = input\nchannels (all 64 "
            "rows stay)", ha="center", va="top", fontsize=7)
    for xa, xb in [(1.7, 3.1), (3.8, 5.3)]:
        ax.annotate("", xy=(xb, 5.0), xytext=(xa, 5.0),
                    arrowprops=dict(arrowstyle="->", color="black", lw=1))
    save(fig, out_dir, "lab1_channel_pruning.svg")


def storage_formats(t, out_dir):
    bits = 32
    sizes = [t[n].size for n in PRUNABLE]
    rows = [t[n].shape[0] for n in PRUNABLE]
    params = sum(a.size for n, a in t.items()
                 if not n.endswith("running_mean") and not n.endswith("running_var"))
    other = params - sum(sizes)  # biases and batch-norm scales and shifts, kept dense
    dense_bits = params * bits

    def model_bits(s, fmt):
        total = other * bits
        for n, r in zip(sizes, rows):
            z = n - int(np.floor(n * s + 0.5))  # values kept
            if fmt == "values":
                total += z * bits
            elif fmt == "bitmask":
                total += min(n * bits, n + z * bits)
            elif fmt == "csr16":
                total += min(n * bits, z * (bits + 16) + (r + 1) * 32)
        return total

    grid = np.linspace(0, 1, 2001)
    curves = {f: np.array([model_bits(s, f) / dense_bits for s in grid])
              for f in ("values", "bitmask", "csr16")}
    need = {f: grid[np.argmax(curves[f] <= 0.25)] for f in curves}
    print("storage: %d parameters (%d in prunable weights, %d dense), %d bytes dense"
          % (params, sum(sizes), other, dense_bits // 8))
    for f in curves:
        print("  %-8s uniform sparsity for 25%% of the dense size: %.2f%%" % (f, 100 * need[f]))

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.axhline(100, color=GREY, lw=1, label="dense (32 bits per value)")
    ax.plot(100 * grid, 100 * curves["values"], color=GREY, ls=":", lw=1.5,
            label="non-zero values only (no positions: a lower bound)")
    ax.plot(100 * grid, 100 * curves["bitmask"], color=BLUE, lw=2,
            label="bitmask: 1 bit per position + 32 per non-zero (graded)")
    ax.plot(100 * grid, 100 * curves["csr16"], color=ORANGE, lw=1.5, ls="--",
            label="CSR: 32 + 16-bit column index per non-zero,\n32-bit row pointers")
    ax.axhline(25, color="black", lw=0.8, ls="-.")
    ax.text(1, 26.5, "budget: 25% of the dense size", fontsize=8)
    for f, color, dx in (("bitmask", BLUE, -14), ("csr16", ORANGE, 3)):
        ax.plot([100 * need[f]], [25], "o", color=color)
        ax.annotate("%.1f%%" % (100 * need[f]), xy=(100 * need[f], 25),
                    xytext=(100 * need[f] + dx, 8), fontsize=8, color=color,
                    arrowprops=dict(arrowstyle="-", color=color, lw=0.8))
    ax.set_xlabel("sparsity of every conv and linear weight (%)", fontsize=9)
    ax.set_ylabel("model size (% of dense)", fontsize=9)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 110)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7.5, loc="upper right", framealpha=0.9)
    ax.set_title("Size of the VGG (%s parameters) against uniform sparsity"
                 % format(params, ","), fontsize=10)
    save(fig, out_dir, "lab1_storage_formats.svg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.join(REPO, "labs", "lab1_pruning",
                                                        "vgg_dense.safetensors"))
    parser.add_argument("--out", default=HERE)
    args = parser.parse_args()
    plt.rcParams["svg.hashsalt"] = "effml-lab1"
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: small files, searchable
    plt.rcParams["font.family"] = "DejaVu Sans"
    tensors = read_safetensors(args.model)
    missing = [n for n in PRUNABLE + ["features.8.weight"] if n not in tensors]
    if missing:
        raise SystemExit("%s: not the lab's VGG (missing %s)" % (args.model, ", ".join(missing)))
    os.makedirs(args.out, exist_ok=True)
    weight_histograms(tensors, args.out)
    channel_pruning(tensors, args.out)
    storage_formats(tensors, args.out)


if __name__ == "__main__":
    main()
