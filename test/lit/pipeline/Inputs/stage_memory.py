"""Compares the per-stage memory of a pipeline report with the single-rank report of the same model.

Usage: stage_memory.py SINGLE.txt PIPELINE.txt. Prints the ratios of the largest stage arena to the single-rank
arena and of each stage's stash to its arena, and checks every stage's total: param + optimizer state + gradient
accumulator + arena + slots x stash (the report's own figures added up again). Exit 1 on a mismatch."""
import re
import sys

single = open(sys.argv[1]).read()
pipeline = open(sys.argv[2]).read()
arena1 = int(re.search(r"^arena bytes per rank: (\d+)$", single, re.M).group(1))

stages = {}
for key, pattern in [
    ("arena", r"arena bytes per rank: (\d+)"),
    ("param", r"param bytes per rank: (\d+)"),
    ("state", r"optimizer state bytes per rank: (\d+)"),
    ("accum", r"fp32 accumulator bytes per rank: (\d+)"),
    ("total", r"total bytes per rank: (\d+)"),
    ("stash", r"pipeline activation stash per rank: (\d+) bytes x (\d+) slots"),
]:
    for m in re.finditer(r"^stage (\d+): .*?" + pattern, pipeline, re.M):
        stages.setdefault(int(m.group(1)), {})[key] = tuple(int(g) for g in m.groups()[1:])

largest = max(s["arena"][0] for s in stages.values())
stash_ratio = max(s["stash"][0] / s["arena"][0] for s in stages.values() if "stash" in s)
print(f"{len(stages)} stages of 4 layers: largest stage arena / single-rank arena {largest / arena1:.3f}, "
      f"largest stash / its arena {stash_ratio:.3f}")
ok = True
for k, s in sorted(stages.items()):
    stash, slots = s.get("stash", (0, 0))
    want = s["param"][0] + s["state"][0] + s.get("accum", (0,))[0] + s["arena"][0] + stash * slots
    if want != s["total"][0]:
        print(f"stage {k}: total {s['total'][0]} != {want}")
        ok = False
print("totals ok" if ok else "totals FAIL")
sys.exit(0 if ok else 1)
