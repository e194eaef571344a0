# For each accumulate step of a plan in flatc's JSON form: "same <storage>" when its result is the slot of its
# first operand (the accumulator), else "differs: <operand slot> -> <result slot>".
/ op: / { acc = ($2 == "\"accumulate\",") }
acc && /operands: \[/ { part = "op"; n = 0 }
acc && /results: \[/ { part = "res" }
acc && /storage:/ { st = $2 }
acc && /index:/ {
  if (part == "op") {
    if (++n == 1) o = st " " $2
  } else if (part == "res") {
    r = st " " $2
    gsub(/[",]/, "", st)
    print (o == r ? "same " st : "differs: " o " -> " r)
    acc = 0
  }
}
