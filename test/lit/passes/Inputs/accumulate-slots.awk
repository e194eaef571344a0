# For each step of op OP (default accumulate) of a plan in flatc's JSON form, per result i: "same <storage>" when
# it is the slot of operand i (written in place there), else "differs: <operand slot> -> <result slot>".
BEGIN { if (OP == "") OP = "accumulate" }
/ op: / { acc = ($2 == "\"" OP "\","); part = ""; n = 0; m = 0 }
acc && /operands: \[/ { part = "op" }
acc && /results: \[/ { part = "res" }
acc && /storage:/ { st = $2 }
acc && /index:/ {
  gsub(/[",]/, "", st)
  if (part == "op") ops[++n] = st " " $2
  else if (part == "res") res[++m] = st " " $2
}
acc && /phase:/ {
  for (i = 1; i <= m; ++i) {
    split(res[i], kind, " ")
    print (ops[i] == res[i] ? "same " kind[1] : "differs: " ops[i] " -> " res[i])
  }
  acc = 0
}
