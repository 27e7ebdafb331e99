#!/usr/bin/env python3
"""Edits a single-file checkpoint for the FP8 import tests:
  edit.py DIR scale TENSOR FACTOR   multiplies TENSOR_scale_inv by FACTOR
  edit.py DIR drop TENSOR           removes TENSOR
  edit.py DIR reshape TENSOR        gives TENSOR one more row of zeros
  edit.py DIR config KEY JSON       sets quantization_config[KEY] (null: removes
                                    it; KEY '-' sets or removes the whole object)
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "e2e"))
from safetensors_util import read, write  # noqa: E402

path, op = sys.argv[1], sys.argv[2]
if op == "config":
    key, value = sys.argv[3], json.loads(sys.argv[4])
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    if key == "-":
        c["quantization_config"] = value
    elif value is None:
        c["quantization_config"].pop(key)
    else:
        c["quantization_config"][key] = value
    if c.get("quantization_config") is None:
        c.pop("quantization_config", None)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    sys.exit(0)
st = os.path.join(path, "model.safetensors")
t = read(st)
name = sys.argv[3]
if op == "scale":
    dtype, shape, raw = t[name + "_scale_inv"]
    n = len(raw) // 4
    v = [x * float(sys.argv[4]) for x in struct.unpack("<%df" % n, raw)]
    t[name + "_scale_inv"] = (dtype, shape, struct.pack("<%df" % n, *v))
elif op == "drop":
    del t[name]
elif op == "reshape":
    dtype, shape, raw = t[name]
    row = len(raw) // shape[0]
    t[name] = (dtype, [shape[0] + 1] + shape[1:], raw + bytes(row))
else:
    sys.exit("edit.py: unknown operation " + op)
write(st, t)
