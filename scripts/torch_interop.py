#!/usr/bin/python3
"""Proves that EffML's safetensors files and PyTorch's state_dict are interchangeable.

Run with Debian's /usr/bin/python3 (python3-torch). Debian ships no `safetensors` Python package,
so the format is read and written here with struct, json and torch.frombuffer: an 8-byte
little-endian header length, a JSON header mapping each name to {"dtype", "shape",
"data_offsets"} (plus an optional "__metadata__" map of strings), then the raw little-endian data.

Commands (DIR is a folder both sides use; tests/core/test_torch_interop.cpp drives them):

  torch_interop.py check-cpp DIR
      Reads what the C++ side wrote and checks it in PyTorch:
      - cpp_dtypes.safetensors: F32, I8 and I32 tensors whose expected dtype, shape and values
        are given as JSON in the file's metadata entry "expect";
      - cpp_mlp.safetensors: a checkpoint of an effml Sequential (architecture as JSON in the
        metadata entry "arch"), loaded with load_state_dict(strict=True) into the same
        torch.nn.Sequential, whose output on x must match y from cpp_mlp_io.safetensors.

  torch_interop.py write-torch DIR
      Writes, for the C++ side to load:
      - torch_dtypes.safetensors: F32, I8 and I32 tensors with the same "expect" metadata;
      - torch_mlp.safetensors + torch_mlp_io.safetensors: the state_dict of an nn.Sequential of
        nn.Linear layers, an input x and PyTorch's output y;
      - torch_conv_bn.safetensors + torch_conv_bn_io.safetensors: the same for a small
        Conv2d + BatchNorm2d model whose running statistics have been updated by training-mode
        passes; y is the evaluation-mode output.

Exit status 0 when every check passes, 1 with a message naming the file and the difference
otherwise.
"""
import json
import os
import struct
import sys

import torch

FORMAT_VERSION = "1"
DTYPES = {"F32": torch.float32, "I8": torch.int8, "I32": torch.int32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}

# Largest |torch - effml| accepted on a forward pass. Measured: 4.8e-7 for effml's MLP run by
# torch, 6.0e-8 and 4.1e-8 for torch's MLP and conv + batch-norm model run by effml (float32 sums
# taken in different orders).
FORWARD_TOLERANCE = 1e-5


class CheckFailed(Exception):
    pass


def fail(path, message):
    raise CheckFailed("%s: %s" % (path, message))


# ---- the file format ---------------------------------------------------------------------------

def read_safetensors(path):
    """Returns ({name: tensor} in data-area order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail(path, "%d bytes, too few for the header length" % len(raw))
    (length,) = struct.unpack("<Q", raw[:8])
    if length > len(raw) - 8:
        fail(path, "header length %d is larger than the file (%d bytes)" % (length, len(raw)))
    header = json.loads(raw[8:8 + length].decode("utf-8"))
    data = raw[8 + length:]
    metadata = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors = {}
    pos = 0
    for name, e in entries:
        if e["dtype"] not in DTYPES:
            fail(path, "tensor '%s': dtype %s is not F32, I8 or I32" % (name, e["dtype"]))
        dtype = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        if begin != pos or end > len(data):
            fail(path, "tensor '%s': data_offsets %s do not follow %d" % (name, [begin, end], pos))
        shape = list(e["shape"])
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * torch.tensor([], dtype=dtype).element_size():
            fail(path, "tensor '%s': %s %s does not fill %d bytes" % (name, e["dtype"], shape,
                                                                    end - begin))
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(shape)
        tensors[name] = t
        pos = end
    if pos != len(data):
        fail(path, "%d bytes after the last tensor" % (len(data) - pos))
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor) written in that order. Writes path.tmp, then renames."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        if t.dtype not in DTYPE_NAMES:
            raise ValueError("tensor '%s': dtype %s cannot be written (F32, I8, I32 only)"
                             % (name, t.dtype))
        nbytes = t.numel() * t.element_size()
        blob = bytearray(nbytes)
        if nbytes:
            # Copies the tensor's bytes straight into the bytearray (no numpy needed).
            torch.frombuffer(blob, dtype=torch.uint8).copy_(t.reshape(-1).view(torch.uint8))
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        blobs.append(blob)
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


# ---- expectations and models --------------------------------------------------------------------

def expectation(tensors):
    """JSON text describing each tensor's dtype, shape and exact values."""
    return json.dumps({name: {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                              "values": t.reshape(-1).tolist()} for name, t in tensors})


def check_expectation(path, tensors, expect_json):
    expect = json.loads(expect_json)
    if sorted(expect) != sorted(tensors):
        fail(path, "tensors %s, expected %s" % (sorted(tensors), sorted(expect)))
    for name, e in expect.items():
        t = tensors[name]
        if t.dtype != DTYPES[e["dtype"]]:
            fail(path, "tensor '%s': dtype %s, expected %s" % (name, t.dtype, e["dtype"]))
        if list(t.shape) != e["shape"]:
            fail(path, "tensor '%s': shape %s, expected %s" % (name, list(t.shape), e["shape"]))
        want = torch.tensor(e["values"], dtype=t.dtype).reshape(e["shape"])
        if not torch.equal(t, want):
            i = int((t.reshape(-1) != want.reshape(-1)).nonzero()[0])
            fail(path, "tensor '%s': element %d is %r, expected %r"
                 % (name, i, t.reshape(-1)[i].item(), want.reshape(-1)[i].item()))


def build_model(arch):
    """arch: JSON list such as [["Conv2d", 1, 4, 3, 1, 1], ["BatchNorm2d", 4], ["ReLU"],
    ["Flatten"], ["Linear", 144, 3]] (Conv2d: in, out, kernel, stride, padding)."""
    layers = []
    for spec in arch:
        kind, args = spec[0], spec[1:]
        if kind == "Linear":
            layers.append(torch.nn.Linear(args[0], args[1]))
        elif kind == "ReLU":
            layers.append(torch.nn.ReLU())
        elif kind == "Flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "Conv2d":
            layers.append(torch.nn.Conv2d(args[0], args[1], args[2], stride=args[3],
                                          padding=args[4]))
        elif kind == "BatchNorm2d":
            layers.append(torch.nn.BatchNorm2d(args[0]))
        else:
            raise ValueError("unknown layer %r in arch" % kind)
    return torch.nn.Sequential(*layers)


def state_dict_for_file(model):
    """The model's state_dict as (name, tensor) pairs the format accepts. PyTorch's batch-norm
    counter num_batches_tracked is int64 (I64), which EffML does not read; it is stored as I32,
    and the C++ loader ignores it."""
    out = []
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            t = t.to(torch.int32)
        out.append((name, t))
    return out


# ---- commands ---------------------------------------------------------------------------------

def check_cpp(folder):
    path = os.path.join(folder, "cpp_dtypes.safetensors")
    tensors, meta = read_safetensors(path)
    if "expect" not in meta:
        fail(path, "no 'expect' entry in the metadata")
    check_expectation(path, tensors, meta["expect"])
    print("torch_interop: %s: %d tensors match (%s)"
          % (path, len(tensors), ", ".join("%s %s" % (n, DTYPE_NAMES[t.dtype])
                                           for n, t in tensors.items())))

    path = os.path.join(folder, "cpp_mlp.safetensors")
    state, meta = read_safetensors(path)
    model = build_model(json.loads(meta["arch"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail(path, "load_state_dict(strict=True): %s" % e)
    io_path = os.path.join(folder, "cpp_mlp_io.safetensors")
    io, _ = read_safetensors(io_path)
    model.eval()
    with torch.no_grad():
        y = model(io["x"])
    diff = (y - io["y"]).abs().max().item()
    if diff > FORWARD_TOLERANCE:
        fail(io_path, "torch output differs from effml's by %.3g (tolerance %g)"
             % (diff, FORWARD_TOLERANCE))
    print("torch_interop: %s: %s loads into torch; forward max |diff| = %.3g"
          % (path, meta["arch"], diff))


def write_torch(folder):
    torch.manual_seed(0)
    os.makedirs(folder, exist_ok=True)

    dtypes = [
        ("f32", torch.tensor([[0.1, -0.0, 1e-38, 3.0e38], [3.14159265, -1.5, 2.0 ** -24, 7.0]],
                             dtype=torch.float32)),
        ("i8", torch.arange(-128, 128, dtype=torch.int8).reshape(16, 16)),
        ("i32", torch.tensor([[-2 ** 31, -1, 0], [1, 123456789, 2 ** 31 - 1]], dtype=torch.int32)),
    ]
    write_safetensors(os.path.join(folder, "torch_dtypes.safetensors"), dtypes,
                      {"expect": expectation(dtypes), "writer": "torch_interop.py"})

    models = {
        "torch_mlp": ([["Linear", 6, 16], ["ReLU"], ["Linear", 16, 4]], [5, 6]),
        "torch_conv_bn": ([["Conv2d", 1, 4, 3, 1, 1], ["BatchNorm2d", 4], ["ReLU"], ["Flatten"],
                           ["Linear", 4 * 6 * 6, 3]], [2, 1, 6, 6]),
    }
    for stem, (arch, in_shape) in models.items():
        model = build_model(arch)
        # Training-mode passes move the batch-norm running statistics away from (0, 1), so the
        # loaded buffers matter to the evaluation-mode output.
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(in_shape) * 2.0 + 0.5)
        model.eval()
        x = torch.randn(in_shape)
        with torch.no_grad():
            y = model(x)
        meta = {"arch": json.dumps(arch), "format_version": FORMAT_VERSION,
                "torch_version": torch.__version__}
        write_safetensors(os.path.join(folder, stem + ".safetensors"), state_dict_for_file(model),
                          meta)
        write_safetensors(os.path.join(folder, stem + "_io.safetensors"), [("x", x), ("y", y)])
        print("torch_interop: wrote %s.safetensors (%s) and %s_io.safetensors"
              % (os.path.join(folder, stem), ", ".join(n for n, _ in state_dict_for_file(model)),
                 stem))


def main(argv):
    if sys.byteorder != "little":
        print("torch_interop: the safetensors data is little-endian; this host is not")
        return 1
    if len(argv) != 3 or argv[1] not in ("check-cpp", "write-torch"):
        print("usage: %s check-cpp DIR | write-torch DIR" % argv[0])
        return 2
    try:
        if argv[1] == "check-cpp":
            check_cpp(argv[2])
        else:
            write_torch(argv[2])
    except CheckFailed as e:
        print("torch_interop: FAILED: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
