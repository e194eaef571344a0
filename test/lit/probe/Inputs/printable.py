"""Exits 1 when FILE holds a byte a terminal must not receive from an error message: a control byte other than
newline, DEL, a C1 control or invalid UTF-8 (probe finding 6, messages.test)."""
import sys

data = open(sys.argv[1], "rb").read()
try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    sys.exit(f"{sys.argv[1]}: not UTF-8: {e}")
bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
if bad:
    sys.exit(f"{sys.argv[1]}: unprintable characters {bad!r}")
