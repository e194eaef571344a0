#!/usr/bin/env python3
"""Hugging Face reference for megdata's GPT-2 byte-level BPE (runtime/data/Tokenizer.h).

  tokenizer_reference.py train --vocab-size N --out DIR FILE...
      Trains a byte-level BPE with the `tokenizers` library (ByteLevelBPETokenizer, add_prefix_space=False, special
      token <|endoftext|>) on FILE... and saves DIR/vocab.json + DIR/merges.txt in GPT-2's format. (There is no
      network to fetch GPT-2's own files; any vocabulary in that format exercises the same code.)

  tokenizer_reference.py unicode-corpus --out FILE
      Writes a corpus of every assigned code point above ASCII of the letter, mark, number, punctuation, symbol and
      space-separator categories (this Python's unicodedata), in a fixed pseudo-random mix with ASCII letters,
      digits, spaces, apostrophes and newlines, as `%`-separated documents: a sweep of the pre-tokenizer's \\p{L},
      \\p{N} and \\s classes.

  tokenizer_reference.py compare --vocab V --merges M --tokens OUT.tok [--separator LINE] FILE...
      Splits FILE... into documents exactly as megdata does (runtime/data/Documents.h: one per file, or at lines holding
      exactly LINE; documents of only ASCII whitespace are dropped), encodes each with transformers.GPT2Tokenizer (the
      slow, pure-Python reference) and GPT2TokenizerFast loaded from the same two files, appends <|endoftext|> after
      each, and compares every id with megdata's token file (header per runtime/data/TokenData.h). Prints one line per
      reference and exits 1 on any difference, naming the first one.

Needs the parity venv (transformers 4.49.0 with tokenizers 0.21.4).
"""
import argparse
import struct
import sys

ASCII_SPACE = b" \t\r\n\v\f"


def fail(msg):
    print("tokenizer_reference: error: " + msg, file=sys.stderr)
    sys.exit(1)


def split_documents(data, separator):
    """runtime/data/Documents.cpp's splitDocuments, on bytes."""
    docs = []

    def keep(doc):
        if doc.strip(ASCII_SPACE):
            docs.append(doc)

    if not separator:
        keep(data)
        return docs
    sep = separator.encode("utf-8")
    begin = pos = 0
    while pos < len(data):
        eol = data.find(b"\n", pos)
        nxt = len(data) if eol < 0 else eol + 1
        line = data[pos:len(data) if eol < 0 else eol]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == sep:
            keep(data[begin:pos])
            begin = nxt
        pos = nxt
    keep(data[begin:])
    return docs


def read_token_file(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28 or data[:8] != b"MEGTOK01":
        fail(f"{path}: not a token file")
    version, vocab, count, kind = struct.unpack("<IIQI", data[8:28])
    header = 28
    eod = -1
    if version == 2:
        eod, nflags = struct.unpack("<iI", data[28:36])
        header = 36 + (nflags + 3) // 4 * 4
    if len(data) != header + 4 * count:
        fail(f"{path}: size does not match the header")
    ids = list(struct.unpack(f"<{count}i", data[header:]))
    return vocab, kind, eod, ids


def cmd_train(args):
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train(files=args.files, vocab_size=args.vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
              show_progress=False)
    tok.save_model(args.out)
    print(f"trained: vocabulary {tok.get_vocab_size()}")


def cmd_unicode_corpus(args):
    import random
    import unicodedata

    rng = random.Random(1)
    docs, out = [], []
    n = 0
    for cp in range(0x80, 0x110000):
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat[0] not in "LMNPSZ" or cat in ("Zl", "Zp"):
            continue
        out.append(c)
        r = rng.random()
        if r < 0.15:
            out.append(" ")
        elif r < 0.2:
            out.append(rng.choice("a1 .'\n"))
        n += 1
        if n % 400 == 0:
            docs.append("".join(out))
            out = []
    docs.append("".join(out))
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n%\n".join(docs))
    print(f"unicode corpus: {n} code points (Unicode {unicodedata.unidata_version}) in {len(docs)} documents")


def cmd_compare(args):
    from transformers import GPT2Tokenizer, GPT2TokenizerFast

    vocab, kind, eod, ours = read_token_file(args.tokens)
    if kind != 1:
        fail(f"{args.tokens}: tokenizer kind {kind}, expected 1 (gpt2-bpe)")
    docs = []
    for path in args.files:
        with open(path, "rb") as f:
            docs += split_documents(f.read(), args.separator)
    texts = [d.decode("utf-8") for d in docs]
    non_ascii = sum(1 for t in texts if any(ord(c) > 127 for c in t))
    status = 0
    for name, cls in (("slow GPT2Tokenizer", GPT2Tokenizer), ("fast GPT2TokenizerFast", GPT2TokenizerFast)):
        ref_tok = cls(vocab_file=args.vocab, merges_file=args.merges)
        ref_eod = ref_tok.convert_tokens_to_ids("<|endoftext|>")
        if ref_eod != eod:
            fail(f"{name}: <|endoftext|> is {ref_eod}, the token file says {eod}")
        ref = []
        starts = []
        for t in texts:
            starts.append(len(ref))
            ref += ref_tok.encode(t) + [ref_eod]
        n = min(len(ref), len(ours))
        first = next((i for i in range(n) if ref[i] != ours[i]), None)
        mismatches = sum(1 for i in range(n) if ref[i] != ours[i]) + abs(len(ref) - len(ours))
        print(f"{name}: {len(ref)} tokens in {len(texts)} documents ({non_ascii} with non-ASCII text), "
              f"megdata {len(ours)} tokens, {mismatches} mismatches")
        if first is None and len(ref) != len(ours):
            first = n
        if first is not None:
            status = 1
            doc = max(i for i, s in enumerate(starts) if s <= first)
            print(f"  first difference at token {first} (document {doc}): reference {ref[first:first + 8]}, "
                  f"megdata {ours[first:first + 8]}; document text {texts[doc][:200]!r}")
    if max(ours, default=-1) >= vocab:
        fail(f"{args.tokens}: id above the vocabulary")
    sys.exit(status)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--vocab-size", type=int, required=True)
    t.add_argument("--out", required=True)
    t.add_argument("files", nargs="+")
    u = sub.add_parser("unicode-corpus")
    u.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--vocab", required=True)
    c.add_argument("--merges", required=True)
    c.add_argument("--tokens", required=True)
    c.add_argument("--separator", default="")
    c.add_argument("files", nargs="+")
    args = p.parse_args()
    {"train": cmd_train, "unicode-corpus": cmd_unicode_corpus, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    main()
