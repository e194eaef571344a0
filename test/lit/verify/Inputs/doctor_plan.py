"""Doctors one rank's plan of a plan directory, for the collective-order tests (test/lit/verify).

    doctor_plan.py FLATC PLAN_FBS SRC_DIR DST_DIR RANK ACTION [ARGS]

Copies SRC_DIR to DST_DIR, then edits rank RANK's plan through the schema (flatc: binary -> JSON -> binary), never
by byte offsets. The collectives are numbered 0, 1, ... in step order (all_reduce, all_reduce_bucket, all_gather,
reduce_scatter, reduce_scatter_bucket, and the pipeline's send and recv):
    swap I J     exchange collective steps I and J
    resize I     halve the last dim of collective I's first operand and result (its element count changes)
    drop I       remove collective step I
Prints what it changed (the step indices and IR names) on stdout.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

COLLECTIVES = ("all_reduce", "all_reduce_bucket", "all_gather", "reduce_scatter", "reduce_scatter_bucket", "send", "recv")


def main():
    flatc, schema, src, dst, rank, action = sys.argv[1:7]
    args = [int(a) for a in sys.argv[7:]]
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    plan = os.path.join(dst, "rank-%s.megplan" % rank)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([flatc, "--json", "--strict-json", "--raw-binary", "-o", tmp, schema, "--", plan], check=True)
        name = os.path.join(tmp, "rank-%s.json" % rank)
        # flatc writes non-finite floats as bare inf / -inf / nan, which Python's json reads as Infinity / NaN.
        with open(name) as f:
            text = re.sub(r"(?<=: )(-?)inf\b", r"\1Infinity", f.read())
            doc = json.loads(re.sub(r"(?<=: )nan\b", "NaN", text))
        steps = doc["steps"]
        where = [i for i, s in enumerate(steps) if s["op"] in COLLECTIVES]
        picked = [where[a] for a in args]
        what = ", ".join("step %d '%s' %s" % (i, steps[i]["op"], steps[i].get("value", "")) for i in picked)
        if action == "swap":
            i, j = picked
            steps[i], steps[j] = steps[j], steps[i]
        elif action == "resize":
            for ref in steps[picked[0]]["operands"][:1] + steps[picked[0]]["results"][:1]:
                ref["shape"][-1] //= 2
                ref["global_shape"][-1] //= 2
        elif action == "drop":
            del steps[picked[0]]
        else:
            sys.exit("doctor_plan.py: unknown action '%s'" % action)
        text = json.dumps(doc, indent=1)
        with open(name, "w") as f:
            f.write(re.sub(r"(?<=: )NaN\b", "nan", re.sub(r"(?<=: )(-?)Infinity\b", r"\1inf", text)))
        subprocess.run([flatc, "--binary", "-o", tmp, schema, name], check=True)
        shutil.move(os.path.join(tmp, "rank-%s.megplan" % rank), plan)
    print("rank %s: %s %s" % (rank, action, what))


if __name__ == "__main__":
    main()
