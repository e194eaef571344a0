"""Prints a token file (runtime/data/TokenData.h) as text: its header fields, then the ids (bytes shown as characters
for byte-level files). Standard library only: run with %syspython."""
import struct
import sys

data = open(sys.argv[1], "rb").read()
magic = data[:8].decode("ascii")
version, vocab, count, kind = struct.unpack("<IIQI", data[8:28])
header = 28
print(f"magic {magic} version {version} vocab {vocab} count {count} kind {kind} size {len(data)}")
if version == 2:
    eod, nflags = struct.unpack("<iI", data[28:36])
    flags = data[36:36 + nflags]
    header = 36 + (nflags + 3) // 4 * 4
    marked = lambda bit: "".join(chr(i) for i in range(min(nflags, 128)) if flags[i] & bit and chr(i).isprintable())
    print(f"eod {eod} flags {nflags} ends-sentence {marked(1)!r} flags-of-space {nflags and flags[32]}")
ids = struct.unpack(f"<{count}i", data[header:header + 4 * count])
assert len(data) == header + 4 * count, "size does not match the header"
print("ids " + " ".join(str(i) for i in ids))
if kind == 0:
    print("text " + repr(bytes(ids).decode("latin-1")))
