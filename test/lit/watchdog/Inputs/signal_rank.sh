#!/bin/bash
# signal_rank.sh MEGRUN PLAN_DIR RANKS SIGNAL VICTIM OUT [MEGRUN FLAGS...]
# Starts `mpirun -np RANKS megrun PLAN_DIR --ranks mpi --steps 100000 FLAGS` with its output in OUT, waits for
# "step 2:" (mid-training), sends SIGNAL (KILL, STOP) to the process of mesh rank VICTIM, and waits for the job to
# end, at most 60 s (then it is killed: exit code 124). Prints the job's exit code and the seconds from the signal to
# the end of the job. A stopped victim is killed at the end.
megrun=$1 plan=$2 ranks=$3 sig=$4 victim=$5 out=$6
shift 6
timeout -s KILL 300 mpirun -np "$ranks" "$megrun" "$plan" --ranks mpi --steps 100000 "$@" > "$out" 2>&1 &
job=$!
for _ in $(seq 1 1200); do
  grep -q "^step 2:" "$out" && break
  kill -0 $job 2> /dev/null || break
  sleep 0.1
done
pid=
for p in $(pgrep -f -- "$megrun $plan --ranks mpi"); do
  if tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim"; then pid=$p; fi
done
if [ -z "$pid" ]; then
  echo "signal_rank.sh: no process of rank $victim (the job did not reach step 2)"
  kill -KILL $job 2> /dev/null
  exit 1
fi
start=$(date +%s.%N)
kill -"$sig" "$pid"
# The bound: every rank must be gone within 60 s.
for _ in $(seq 1 600); do
  kill -0 $job 2> /dev/null || break
  sleep 0.1
done
if kill -0 $job 2> /dev/null; then
  echo "signal_rank.sh: the job still runs 60 s after SIG$sig of rank $victim"
  pkill -KILL -P $job; kill -KILL $job "$pid" 2> /dev/null
  exit 124
fi
wait $job
rc=$?
end=$(date +%s.%N)
kill -KILL "$pid" 2> /dev/null
echo "exit code $rc after SIG$sig of rank $victim, all ranks ended in $(echo "$end - $start" | bc) s"
