"""Shared by the plain-Python test generators: f32 and bf16 rounding of
Python floats, and a minimal safetensors reader and writer (a JSON header
and raw little-endian bytes; only the standard library)."""
import json
import struct


def f32(x):
    """x rounded to the nearest float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bf16(x):
    """x (a float32 value) rounded to the nearest bfloat16, ties to even."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def encode(dtype, values):
    """Raw bytes of `values` (floats or ints) stored as F32, BF16 or I32."""
    if isinstance(values, (bytes, bytearray)):
        return bytes(values)
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "BF16":  # values are already bf16: keep the high half
        return b"".join(struct.pack("<f", v)[2:] for v in values)
    if dtype == "I32":
        return struct.pack(f"<{len(values)}i", *values)
    raise ValueError(f"unsupported dtype {dtype}")


def write(path, tensors):
    """tensors: {name: (dtype, shape, values or raw bytes)}."""
    header, blobs, at = {}, [], 0
    for name, (dtype, shape, values) in tensors.items():
        raw = encode(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read(path):
    """{name: (dtype, shape, raw bytes)}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[a:b])
    return out
