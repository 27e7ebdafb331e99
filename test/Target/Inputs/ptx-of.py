#!/usr/bin/env python3
"""Writes the PTX of a gpu.binary printed with format=isa (the assembly
attribute, unescaped) to a file, for ptxas to compile in a lit test.

    python3 ptx-of.py MODULE.mlir OUT.ptx
"""
import re
import sys

text = open(sys.argv[1]).read()
m = re.search(r'assembly = "(.*?)"[>,]', text, re.S)
if not m:
    sys.exit("ptx-of.py: no gpu.binary assembly in " + sys.argv[1])
ptx = re.sub(r"\\([0-9A-Fa-f]{2})", lambda h: chr(int(h.group(1), 16)),
             m.group(1))
open(sys.argv[2], "w").write(ptx)
