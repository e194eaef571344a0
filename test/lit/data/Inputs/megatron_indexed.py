#!/usr/bin/env python3
"""Write a Megatron-LM indexed dataset (PREFIX.bin + PREFIX.idx) the way Megatron's tools/preprocess_data.py does,
following the layout of megatron/core/datasets/indexed_dataset.py (_IndexWriter), independently of meg's code:

  .idx: b"MMIDIDX\\x00\\x00" | <Q version 1 | <B dtype code | <Q sequence count | <Q document count |
        int32 sequence lengths | int64 sequence pointers (byte offsets into .bin) | int64 document indices
  .bin: every sequence's tokens in the dtype, back to back
  dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16

  megatron_indexed.py write PREFIX CODE TEXT [SEPARATOR]   documents = TEXT split at lines holding exactly SEPARATOR
        (default: the whole file); tokens = the document's UTF-8 bytes then 0x1E (meg's byte-level end of document,
        as megdata writes it); one sequence per document (Megatron's --append-eod layout)
  megatron_indexed.py corrupt PREFIX WHAT   WHAT: truncate (drop the last 5 bytes of .idx), dtype (code 9),
        magic, version, pointer (the last sequence's pointer past the end of .bin), docindex (last entry short)
  megatron_indexed.py split-docs PREFIX_IN PREFIX_OUT SPLIT WHICH   writes the documents of split WHICH (0 train,
        1 valid, 2 test) by Megatron's get_train_valid_test_split_ over documents, as a new dataset (same dtype)
"""
import struct
import sys

import numpy

DTYPES = {1: numpy.uint8, 2: numpy.int8, 3: numpy.int16, 4: numpy.int32, 5: numpy.int64, 6: numpy.float64,
          7: numpy.float32, 8: numpy.uint16}


def write(prefix, code, docs):
    dtype = DTYPES[code]
    size = numpy.dtype(dtype).itemsize
    lengths, pointers, offset = [], [], 0
    with open(prefix + ".bin", "wb") as f:
        for doc in docs:
            f.write(numpy.array(doc, dtype=dtype).tobytes(order="C"))
            lengths.append(len(doc))
            pointers.append(offset)
            offset += len(doc) * size
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(docs) + 1))
        f.write(numpy.array(lengths, dtype=numpy.int32).tobytes(order="C"))
        f.write(numpy.array(pointers, dtype=numpy.int64).tobytes(order="C"))
        f.write(numpy.array(list(range(len(docs) + 1)), dtype=numpy.int64).tobytes(order="C"))


def read(prefix):
    idx = open(prefix + ".idx", "rb").read()
    code = idx[17]
    n, d = struct.unpack("<QQ", idx[18:34])
    lengths = numpy.frombuffer(idx, numpy.int32, n, 34)
    pointers = numpy.frombuffer(idx, numpy.int64, n, 34 + 4 * n)
    bin_ = open(prefix + ".bin", "rb").read()
    docs = [list(numpy.frombuffer(bin_, DTYPES[code], int(l), int(p))) for l, p in zip(lengths, pointers)]
    return code, docs


def split_index(split, size):
    w = [float(s) for s in split.split(",")]
    w += [0.0] * (3 - len(w))
    w = [x / sum(w) for x in w]
    idx = [0]
    for i, x in enumerate(w):
        idx.append(idx[i] + int(round(x * float(size))))
    diff = idx[-1] - size
    return [idx[0]] + [i - diff for i in idx[1:]]


def main():
    cmd = sys.argv[1]
    if cmd == "write":
        prefix, code, text = sys.argv[2], int(sys.argv[3]), open(sys.argv[4], "rb").read().decode("utf-8")
        sep = sys.argv[5] if len(sys.argv) > 5 else None
        docs, cur = [], []
        if sep is None:
            docs = [text]
        else:
            for line in text.splitlines(keepends=True):
                if line.rstrip("\n").rstrip("\r") == sep:
                    docs.append("".join(cur))
                    cur = []
                else:
                    cur.append(line)
            docs.append("".join(cur))
        docs = [d for d in docs if d.strip(" \t\r\n\v\f")]
        write(prefix, code, [list(d.encode("utf-8")) + [0x1E] for d in docs])
        print("wrote %d documents, dtype code %d" % (len(docs), code))
    elif cmd == "corrupt":
        prefix, what = sys.argv[2], sys.argv[3]
        idx = bytearray(open(prefix + ".idx", "rb").read())
        n = struct.unpack("<Q", idx[18:26])[0]
        if what == "truncate":
            idx = idx[:-5]
        elif what == "dtype":
            idx[17] = 9
        elif what == "magic":
            idx[0:7] = b"NOTIDX!"
        elif what == "version":
            idx[9:17] = struct.pack("<Q", 2)
        elif what == "pointer":
            at = 34 + 4 * n + 8 * (n - 1)
            idx[at:at + 8] = struct.pack("<q", 1 << 40)
        elif what == "docindex":
            idx[-8:] = struct.pack("<q", n - 1)
        open(prefix + ".idx", "wb").write(bytes(idx))
    elif cmd == "split-docs":
        code, docs = read(sys.argv[2])
        bounds = split_index(sys.argv[4], len(docs))
        which = int(sys.argv[5])
        part = docs[bounds[which]:bounds[which + 1]]
        write(sys.argv[3], code, part)
        print("split %s of %d documents: bounds %s, split %d has %d" % (sys.argv[4], len(docs), bounds, which,
                                                                       len(part)))


if __name__ == "__main__":
    main()
