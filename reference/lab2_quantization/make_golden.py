#!/usr/bin/python3
"""Writes labs/lab2_quantization/golden/quantized_linear_4x8x8.safetensors.

A quantized linear layer of batch 4, 8 inputs and 8 outputs, computed independently of the C++
code: float inputs from torch's seeded generator, quantization in numpy float32 (the arithmetic
lab2.h specifies), the integer layer in Python integers (arbitrary precision, so no overflow
hides a mistake). The file holds the float inputs, every intermediate the lab's functions
return (scales, zero points, int8 tensors, int32 bias, multipliers and shifts) and the int8
output, so the public test can check Tasks 1 to 5 on one realistic case.

Run with Debian's Python, which has torch (from the repository's top folder):
    /usr/bin/python3 reference/lab2_quantization/make_golden.py
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

SEED = 2
N, IN, OUT = 4, 8, 8
BITS = 8
QMIN, QMAX = -(1 << (BITS - 1)), (1 << (BITS - 1)) - 1


def scale_and_zero_point(r):
    """Asymmetric S and Z from r's range, in double (Task 2)."""
    rmin, rmax = float(r.min()), float(r.max())
    assert rmin < rmax
    s = (rmax - rmin) / (QMAX - QMIN)
    z = min(max(round(QMIN - rmin / s), QMIN), QMAX)  # round(): halves to even
    return np.float32(s), int(z)


def linear_quantize(r, scale, zero_point):
    """clamp(rint(r / S) + Z) with a float32 division (Task 1)."""
    q = np.rint(r.astype(np.float32) / np.float32(scale)).astype(np.int64) + zero_point
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def quantize_multiplier(m):
    """M = M0 * 2^-31 * 2^-n with M0 in [2^30, 2^31) (the lab's given code)."""
    assert 0 < m < 1
    f, e = math.frexp(m)
    m0 = math.floor(f * 2**31 + 0.5)  # f * 2^31 > 0: halves away from zero
    n = -e
    if m0 == 2**31:
        m0 //= 2
        n -= 1
    assert 0 <= n <= 31
    return m0, n


def trunc_div(a, b):
    q = abs(a) // b
    return q if a >= 0 else -q


def multiply_by_quantized_multiplier(acc, m0, n):
    p = acc * m0
    nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
    high = trunc_div(p + nudge, 1 << 31)
    mask = (1 << n) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> n) + (1 if remainder > threshold else 0)


def save_safetensors(path, tensors, metadata):
    """8-byte little-endian header length, JSON header padded with spaces, raw data."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.int8): "I8", np.dtype(np.int32): "I32"}
    header, blobs, offset = {}, [], 0
    for name, array in tensors:
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    torch.manual_seed(SEED)
    x = torch.randn(N, IN).numpy().astype(np.float32)
    w = (torch.randn(OUT, IN) * 0.3).numpy().astype(np.float32)
    b = (torch.randn(OUT) * 0.1).numpy().astype(np.float32)
    y = x.astype(np.float64) @ w.astype(np.float64).T + b

    s_x, z_x = scale_and_zero_point(x)
    x_q = linear_quantize(x, s_x, z_x)
    # Symmetric per output channel (Task 3): S_c = max|w_c| / qmax in float32.
    s_w = (np.abs(w).max(axis=1) / np.float32(QMAX)).astype(np.float32)
    w_q = np.stack([linear_quantize(w[c], s_w[c], 0) for c in range(OUT)])
    # Bias (Task 4): float32 b / (S_w * S_x).
    b_q = np.rint(b / (s_w * np.float32(s_x))).astype(np.int32)
    s_y, z_y = scale_and_zero_point(y.astype(np.float32))

    m0, shift = zip(*(quantize_multiplier(float(s_x) * float(s_w[o]) / float(s_y))
                      for o in range(OUT)))
    y_q = np.zeros((N, OUT), dtype=np.int8)
    for i in range(N):
        for o in range(OUT):
            acc = int(b_q[o]) + sum((int(x_q[i, j]) - z_x) * int(w_q[o, j]) for j in range(IN))
            assert -2**31 <= acc < 2**31
            v = multiply_by_quantized_multiplier(acc, m0[o], shift[o]) + z_y
            y_q[i, o] = min(max(v, -128), 127)

    # The integer layer approximates the float one: dequantized outputs within a few steps.
    err = np.abs((y_q.astype(np.float64) - z_y) * float(s_y) - y).max() / float(s_y)
    print(f"S_x {s_x:.6g} Z_x {z_x}, S_y {s_y:.6g} Z_y {z_y}; largest error of the "
          f"dequantized output {err:.3f} steps of S_y")
    assert err < 3

    i32 = lambda v: np.array(v, dtype=np.int32)
    f32 = lambda v: np.array(v, dtype=np.float32)
    tensors = [
        ("x", x), ("w", w), ("b", b),
        ("x_scale", f32(s_x)), ("x_zero_point", i32(z_x)), ("x_q", x_q),
        ("w_scales", s_w), ("w_q", w_q), ("bias_q", b_q),
        ("y_scale", f32(s_y)), ("y_zero_point", i32(z_y)),
        ("multiplier", i32(m0)), ("shift", i32(shift)), ("y_q", y_q),
    ]
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(top, "labs", "lab2_quantization", "golden",
                        "quantized_linear_4x8x8.safetensors")
    save_safetensors(path, tensors, {"generator": "reference/lab2_quantization/make_golden.py",
                                     "seed": str(SEED), "torch": torch.__version__})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
