#!/usr/bin/env python3
"""Point the run path (DT_RUNPATH or DT_RPATH) of shipped ELF libraries at $ORIGIN, in place.

Usage: set-origin-runpath.py LIB...
Debian's Open MPI libraries carry RUNPATH /usr/lib/x86_64-linux-gnu/openmpi/lib, and a library with a RUNPATH of its
own finds its dependencies there, not through the executable's $ORIGIN/../lib RPATH: on a host without Open MPI they
would not load. As `chrpath -r` does, the string is overwritten in .dynstr by "$ORIGIN" (never longer than the old
path) and padded with NULs; nothing else in the file moves. Files without a run path are left alone. Stdlib only, so
the bundle build needs no patchelf or chrpath.
"""
import struct
import sys

DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29
PT_LOAD, PT_DYNAMIC = 1, 2
NEW = b"$ORIGIN"


def fix(path: str) -> str:
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit(f"set-origin-runpath: error: {path}: not a little-endian ELF64 file")
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data,
                                                                                 phoff + i * phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return "no dynamic section"
        strtab, runpaths = None, []
        for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == DT_NULL:
                break
            if tag == DT_STRTAB:
                strtab = val
            elif tag in (DT_RPATH, DT_RUNPATH):
                runpaths.append(val)
        if not runpaths:
            return "no run path"
        base = next((o + strtab - v for v, o, n in loads if v <= strtab < v + n), None)
        if base is None:
            raise SystemExit(f"set-origin-runpath: error: {path}: .dynstr is not in a loaded segment")
        done = []
        for index in runpaths:
            start = base + index
            end = data.index(b"\0", start)
            old = bytes(data[start:end])
            if len(NEW) > len(old):
                raise SystemExit(f"set-origin-runpath: error: {path}: run path '{old.decode()}' is shorter than $ORIGIN")
            data[start:end] = NEW + b"\0" * (len(old) - len(NEW))
            done.append(old.decode())
        f.seek(0)
        f.write(data)
        return "run path " + ", ".join(done) + " -> $ORIGIN"


def main() -> int:
    for path in sys.argv[1:]:
        print(f"set-origin-runpath: {path}: {fix(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
