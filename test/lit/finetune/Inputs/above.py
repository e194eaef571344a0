#!/usr/bin/env python3
"""above.py RESULT.json THRESHOLD: prints `above THRESHOLD True|False TOTAL PREDICTIONS` for a --task-result file."""
import json
import sys

r = json.load(open(sys.argv[1]))
print("above", sys.argv[2], r["accuracy"] >= float(sys.argv[2]), r["total"], len(r["predictions"]))
