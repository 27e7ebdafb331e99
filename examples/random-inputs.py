#!/usr/bin/env python3
"""Writes random weights and inputs for a compiled moe model.

    examples/random-inputs.py ./model --out DIR [--seed N]

Asks the model for its buffers (`./model --help`) and writes
DIR/weights.safetensors and DIR/input.safetensors with uniform random values
scaled by 1/sqrt(fan-in). Standard library only.
"""
import argparse
import json
import math
import random
import struct
import subprocess
import sys

PACK = {"F32": "f", "F16": "e"}


def bf16(v):
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    bits += 0x7FFF + ((bits >> 16) & 1)
    return struct.pack("<H", (bits >> 16) & 0xFFFF)


def encode(dtype, values):
    if dtype == "BF16":
        return b"".join(bf16(v) for v in values)
    if dtype in PACK:
        return struct.pack("<%d%s" % (len(values), PACK[dtype]), *values)
    if dtype == "I32":
        return struct.pack("<%di" % len(values), *[int(v * 8) for v in values])
    sys.exit("random-inputs: unsupported dtype %s" % dtype)


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    listing = subprocess.run([args.model, "--help"], capture_output=True,
                             text=True, check=True).stderr
    weights, inputs = [], []
    for line in listing.splitlines():
        fields = line.split(None, 3)
        if len(fields) != 4 or fields[0] not in ("input", "weight"):
            continue
        kind, name, dtype, shape = fields
        dims = json.loads(shape)
        count = math.prod(dims)
        fan_in = dims[-2] if len(dims) >= 2 else 1
        scale = 1.0 if kind == "input" else 1.0 / math.sqrt(fan_in)
        values = [rng.uniform(-scale, scale) for _ in range(count)]
        (inputs if kind == "input" else weights).append(
            (name, dtype, dims, encode(dtype, values)))
    write(args.out + "/weights.safetensors", weights)
    write(args.out + "/input.safetensors", inputs)
    print("wrote %d weights and %d inputs to %s" % (len(weights), len(inputs),
                                                    args.out))


if __name__ == "__main__":
    main()
