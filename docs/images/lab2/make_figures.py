#!/usr/bin/python3
"""Draws the figure of the Lab 2 (quantization) page from the formulas of the lab.

    /usr/bin/python3 docs/images/lab2/make_figures.py [--out DIR]

Writes into docs/images/lab2/:

  lab2_quantization_grid.svg  (a) the integers of 2-bit and 4-bit asymmetric quantization of
                              the range [-0.25, 0.75] (the handout's golden case), with the scale
                              S and the zero point Z marked; (b) the root-mean-square error of
                              quantizing a standard normal tensor against the number of bits,
                              with the range taken from the tensor's minimum and maximum or
                              clipped at 3 standard deviations, and the S / sqrt(12) estimate
  lab2_deep_compression.svg   (a) the Huffman tree of the counts {5, 1, 1, 2} built with the two
                              queues of Task 16, its branches labelled with the canonical codes
                              of its lengths; (b) the size of the LeNet-300-100 Deep Compression
                              file by part: the file the graded task writes (gap_bits 5), the same
                              model with gap_bits 8, and the same entries with fixed-length codes

The scale, zero point and quantization follow lab2.h (Tasks 1 and 2) in numpy, in double:
S = (rmax - rmin) / (qmax - qmin), Z = clamp(round(qmin - rmin / S)), q = clamp(round(r / S) + Z),
rounding halves to even. It needs numpy and matplotlib (Debian: python3-numpy,
python3-matplotlib). The tensor comes from a seeded generator and the SVG is deterministic:
running the script again gives the same bytes. It also prints the values it plots.

The Huffman tree follows Task 16's rules in Python. The file sizes of (b) are not computed here:
they are the sizes by part that `lab2_quantization_runner run deep_compression_lenet300` prints
(reference solution, seed 0, 1 thread; the second file with EFFML_LAB2_DC_GAP_BITS=8), listed in
DC_FILES below; the fixed-length bar is computed from the entry counts the runner prints.
"""

import argparse
import os
from fractions import Fraction

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

BLUE, ORANGE, GREY, GREEN = "#1f6fb4", "#e07b00", "#b0b0b0", "#2a9d3a"


def qrange(bits):
    """[qmin, qmax] of a signed bits-bit integer."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def scale_and_zero_point(rmin, rmax, bits):
    """Task 2: S and Z that map [rmin, rmax] onto [qmin, qmax] (rmin < rmax)."""
    qmin, qmax = qrange(bits)
    scale = (rmax - rmin) / (qmax - qmin)
    zero_point = int(np.clip(np.rint(qmin - rmin / scale), qmin, qmax))
    return scale, zero_point


def quantize(r, bits, scale, zero_point):
    """Task 1: q = clamp(round(r / S) + Z, qmin, qmax), halves to even (np.rint)."""
    qmin, qmax = qrange(bits)
    return np.clip(np.rint(r / scale) + zero_point, qmin, qmax)


def save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    # No date and fixed element ids (svg.hashsalt): the same inputs give the same file.
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    print("wrote", os.path.relpath(path, REPO))


def draw_grid(ax, y, rmin, rmax, bits):
    """One number line: the real range, the representable values S (q - Z) and their q."""
    scale, zp = scale_and_zero_point(rmin, rmax, bits)
    qmin, qmax = qrange(bits)
    qs = np.arange(qmin, qmax + 1)
    grid = scale * (qs - zp)
    print("  %d bits: S = %.6f, Z = %d, grid %.4f .. %.4f (q = %d .. %d), "
          "%.2f maps to q = %d, %.2f maps to q = %d"
          % (bits, scale, zp, grid[0], grid[-1], qmin, qmax,
             rmin, quantize(rmin, bits, scale, zp), rmax, quantize(rmax, bits, scale, zp)))
    ax.plot([-0.36, 0.80], [y, y], color=GREY, lw=1, zorder=1)
    ax.plot([rmin, rmax], [y, y], color=BLUE, lw=6, alpha=0.25, solid_capstyle="butt", zorder=1)
    ax.scatter(grid, np.full_like(grid, y), s=22, color=BLUE, zorder=3)
    # The integer that stands for the real 0.
    ax.scatter([0.0], [y], s=80, facecolor="none", edgecolor=ORANGE, lw=1.6, zorder=4)
    few = len(qs) <= 4
    for q, r in zip(qs, grid):
        ax.text(r, y - 0.16, "%d" % q, ha="center", va="top", fontsize=8 if few else 6.5,
                color=ORANGE if q == zp else "black")
    ax.text(-0.37, y - 0.16, "q:", ha="right", va="top", fontsize=8)
    ax.text(0.0, y + 0.22, "Z = %d" % zp, ha="center", va="bottom", fontsize=8, color=ORANGE)
    # The scale: the step between two neighbouring integers, drawn between q = Z and Z + 1.
    ax.annotate("", xy=(scale, y + 0.1), xytext=(0.0, y + 0.1),
                arrowprops=dict(arrowstyle="<->", color=GREEN, lw=1, shrinkA=0, shrinkB=0))
    step = Fraction(scale).limit_denominator(1000)  # 1/3 and 1/15 read better than decimals
    ax.text(scale + 0.015, y + 0.12, "S = %s" % step, ha="left", va="bottom", fontsize=8,
            color=GREEN)
    ax.text(-0.37, y + 0.05, "%d bits" % bits, ha="right", va="center", fontsize=9,
            fontweight="bold")


def quantization_grid(out_dir):
    rmin, rmax = -0.25, 0.75
    fig = plt.figure(figsize=(13, 3.6))
    grid = fig.add_gridspec(1, 2, width_ratios=[1.35, 1], wspace=0.22)

    print("quantization grids of [%.2f, %.2f]:" % (rmin, rmax))
    ax = fig.add_subplot(grid[0])
    draw_grid(ax, 1.5, rmin, rmax, 2)
    draw_grid(ax, 0.0, rmin, rmax, 4)
    ax.set_xlim(-0.48, 0.82)
    ax.set_ylim(-0.55, 2.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xticks([-0.25, 0, 0.25, 0.5, 0.75])
    ax.tick_params(labelsize=8)
    ax.set_xlabel("real value r (shaded: the range [-0.25, 0.75]; dots: S (q - Z))", fontsize=8)
    ax.set_title("(a) asymmetric quantization of [-0.25, 0.75]: real 0 is the integer Z,\n"
                 "the grid is shifted by the rounding of Z and need not reach the range's ends",
                 fontsize=9)

    # (b) error against bits for a standard normal tensor.
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100_000)
    bits = np.arange(1, 9)
    err_minmax, err_clip, estimate = [], [], []
    print("RMS error of a standard normal tensor of %d values (min %.3f, max %.3f):"
          % (x.size, x.min(), x.max()))
    for b in bits:
        s, z = scale_and_zero_point(x.min(), x.max(), b)
        e = np.sqrt(np.mean((s * (quantize(x, b, s, z) - z) - x) ** 2))
        sc, zc = scale_and_zero_point(-3.0, 3.0, b)
        ec = np.sqrt(np.mean((sc * (quantize(x, b, sc, zc) - zc) - x) ** 2))
        err_minmax.append(e)
        err_clip.append(ec)
        estimate.append(s / np.sqrt(12.0))
        print("  %d bits: min-max S = %.5f, Z = %d, RMS %.5f (S/sqrt(12) = %.5f); "
              "clipped at 3 std S = %.5f, RMS %.5f" % (b, s, z, e, s / np.sqrt(12.0), sc, ec))
    ax = fig.add_subplot(grid[1])
    ax.semilogy(bits, err_minmax, "o-", color=BLUE, lw=1.5, ms=4,
                label="range = [min, max] of the tensor")
    ax.semilogy(bits, estimate, "--", color=GREY, lw=1.2, label=r"$S / \sqrt{12}$ (no clipping)")
    ax.semilogy(bits, err_clip, "s-", color=ORANGE, lw=1.2, ms=3.5,
                label="range = [-3, 3] (values beyond are clamped)")
    ax.set_xlabel("bits b", fontsize=8)
    ax.set_ylabel("RMS error of S (q - Z) against r", fontsize=8)
    ax.set_xticks(bits)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", color="#e0e0e0", lw=0.6)
    ax.legend(fontsize=7.5, frameon=False, loc="lower left")
    ax.set_title("(b) error of quantizing 100,000 standard normal values:\n"
                 "each bit halves it; clipping helps at few bits", fontsize=9)
    save(fig, out_dir, "lab2_quantization_grid.svg")


def huffman_lengths(counts):
    """Task 16: code lengths by the two-queue construction (ties go to the leaf queue).

    Returns the lengths and the tree as nested pairs (leaves are symbol indices), the first
    element of a pair being the first tree taken from the queues."""
    leaves = sorted((c, s) for s, c in enumerate(counts) if c > 0)
    leaf_q = [(c, s) for c, s in leaves]
    node_q = []

    def take():
        if node_q and (not leaf_q or node_q[0][0] < leaf_q[0][0]):
            return node_q.pop(0)
        return leaf_q.pop(0)

    while len(leaf_q) + len(node_q) > 1:
        a, b = take(), take()
        node_q.append((a[0] + b[0], (a[1], b[1])))
    root = (leaf_q or node_q)[0][1]
    lengths = [0] * len(counts)

    def walk(t, depth):
        if isinstance(t, tuple):
            walk(t[0], depth + 1)
            walk(t[1], depth + 1)
        else:
            lengths[t] = max(depth, 1)

    walk(root, 0)
    return lengths


def canonical_codes(lengths):
    """DEFLATE's canonical codes (RFC 1951, 3.2.2) as bit strings; '' for an unused symbol."""
    codes = [""] * len(lengths)
    code, prev = 0, 0
    for length, s in sorted((l, s) for s, l in enumerate(lengths) if l > 0):
        code <<= length - prev
        codes[s] = format(code, "0%db" % length)
        code += 1
        prev = length
    return codes


# Sizes in bytes by part of the LeNet-300-100 file, as the runner prints them (seed 0).
DC_DENSE_BYTES = 1066440
DC_ENTRIES = [26845, 3286, 300]  # fc1, fc2, fc3 with gap_bits 5 (the runner's "entries")
DC_FILES = [
    ("Huffman, gap_bits 8", dict(gaps=13134, symbols=13245, biases=1640,
                                 other=384 + 543 + 247)),
    ("Huffman, gap_bits 5\n(the graded task)", dict(gaps=13996, symbols=15037, biases=1640,
                                                  other=384 + 123 + 247)),
]


def deep_compression(out_dir):
    counts = [5, 1, 1, 2]
    lengths = huffman_lengths(counts)
    codes = canonical_codes(lengths)
    bits = sum(c * l for c, l in zip(counts, lengths))
    print("Huffman lengths of %s: %s, codes %s, %d bits (fixed 2-bit codes: %d)"
          % (counts, lengths, codes, bits, 2 * sum(counts)))

    fig = plt.figure(figsize=(13, 3.9))
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 1.45], wspace=0.38)

    # (a) The tree. Each leaf sits at its code: a 0 goes left, a 1 right, one level per bit.
    ax = fig.add_subplot(grid[0])
    pos = {"": (0.3, 0.0)}
    for s, code in enumerate(codes):
        for k in range(1, len(code) + 1):
            prefix = code[:k]
            if prefix not in pos:
                x0, y0 = pos[prefix[:-1]]
                dx = 0.22 / (1.3 ** (k - 1))
                pos[prefix] = (x0 + (dx if prefix[-1] == "1" else -dx), y0 - 1.0)
    count_at = {}
    for s, code in enumerate(codes):
        for k in range(len(code) + 1):
            count_at[code[:k]] = count_at.get(code[:k], 0) + counts[s]
    leaf_of = {code: s for s, code in enumerate(codes)}
    for prefix, (x, y) in pos.items():
        if prefix:
            xp, yp = pos[prefix[:-1]]
            ax.plot([xp, x], [yp, y], color=GREY, lw=1.2, zorder=1)
            ax.text((xp + x) / 2 + (0.025 if prefix[-1] == "1" else -0.025), (yp + y) / 2,
                    prefix[-1], ha="center", va="center", fontsize=9, color=GREEN,
                    fontweight="bold")
        leaf = prefix in leaf_of
        ax.scatter([x], [y], s=520, color=ORANGE if leaf else BLUE, alpha=0.9, zorder=2)
        ax.text(x, y, "%d" % count_at[prefix], ha="center", va="center", fontsize=9,
                color="white", fontweight="bold", zorder=3)
        if leaf:
            s = leaf_of[prefix]
            ax.text(x, y - 0.33, "s%d: code %s" % (s, prefix), ha="center", va="top",
                    fontsize=8.5)
    ax.set_xlim(-0.02, 0.95)
    ax.set_ylim(-3.7, 0.45)
    ax.axis("off")
    ax.set_title("(a) Huffman tree of the counts {5, 1, 1, 2} (Task 16): lengths %s,\n"
                 "%d bits against %d with 2-bit codes; the canonical codes need only the lengths"
                 % ("{" + ", ".join(str(l) for l in lengths) + "}", bits, 2 * sum(counts)),
                 fontsize=9)

    # (b) The file by part.
    fixed = dict(gaps=sum(-(-e * 5 // 8) for e in DC_ENTRIES),
                 symbols=sum(-(-e * 6 // 8) for e in DC_ENTRIES), biases=1640, other=384 + 247)
    files = [("fixed-length codes\n(5-bit gaps, 6-bit symbols)", fixed)] + DC_FILES
    parts = [("gaps", "gap streams", BLUE), ("symbols", "symbol streams", ORANGE),
             ("biases", "biases (float32)", GREEN), ("other", "codebooks, code tables, header",
                                                     GREY)]
    ax = fig.add_subplot(grid[1])
    for row, (name, sizes) in enumerate(files):
        left = 0
        total = sum(sizes.values())
        for key, label, color in parts:
            ax.barh(row, sizes[key], left=left, color=color, height=0.6,
                    label=label if row == 0 else None)
            if sizes[key] > 2500:
                ax.text(left + sizes[key] / 2, row, "{:,}".format(sizes[key]), ha="center",
                        va="center", fontsize=7.5, color="white")
            left += sizes[key]
        ax.text(total + 400, row, "{:,} bytes, {:.1f}x".format(total, DC_DENSE_BYTES / total),
                ha="left", va="center", fontsize=8)
        print("  %s: %s, total %d bytes (%.1fx smaller than %d)"
              % (name.replace("\n", " "), sizes, total, DC_DENSE_BYTES / total, DC_DENSE_BYTES))
    ax.set_yticks(range(len(files)))
    ax.set_yticklabels([name for name, _ in files], fontsize=8)
    ax.set_xlim(0, 56000)
    ax.set_xlabel("bytes (the dense float32 model: 1,066,440)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=7.5, frameon=False, loc="upper right", ncol=2)
    ax.set_ylim(-0.6, len(files) - 0.4 + 0.9)
    for side in ("right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title("(b) LeNet-300-100 pruned 90/90/70%, 5-bit codebooks: the file by part\n"
                 "(reference solution, seed 0; the test accuracy is 89.35% in all three)",
                 fontsize=9)
    save(fig, out_dir, "lab2_deep_compression.svg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=HERE, help="folder of the SVG files")
    args = parser.parse_args()
    plt.rcParams["svg.hashsalt"] = "effml-lab2"
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: small files, searchable
    plt.rcParams["font.family"] = "DejaVu Sans"
    os.makedirs(args.out, exist_ok=True)
    quantization_grid(args.out)
    deep_compression(args.out)


if __name__ == "__main__":
    main()
