#!/usr/bin/env bash
# Runs Molecule scenarios in lanes side by side: each argument is one lane,
# a list of scenarios run one after the other. Scenarios share no hosts and
# no ports (each has its own host names, and the lab inventory gives each
# host its own port range), and most of a scenario's time is waiting on
# servers and packages, so two lanes fit on two cores.
#   molecule/lanes.sh "docker models serving gateway" "default"
# Each scenario's log is printed when its lane is done; exits non-zero when
# any scenario failed (a failed scenario ends its lane).
set -uo pipefail
logs=${MOLECULE_LOG_DIR:-.cache/molecule-logs}
mkdir -p "$logs"
# Molecule puts ~/.ansible/collections first on the collections path: a copy
# of this collection left there by an earlier run would shadow the checkout
# (molecule/config.yml turns the copying off).
rm -rf "${HOME}/.ansible/collections/ansible_collections/mlserve"

lane() {
  for scenario in $1; do
    started=$(date +%s)
    if molecule -c molecule/config.yml test -s "$scenario" >"$logs/$scenario.log" 2>&1; then
      echo "$scenario passed in $(($(date +%s) - started)) s" >>"$logs/$scenario.log"
    else
      echo "$scenario FAILED after $(($(date +%s) - started)) s" >>"$logs/$scenario.log"
      return 1
    fi
  done
}

pids=()
for scenarios in "$@"; do
  lane "$scenarios" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
for scenarios in "$@"; do
  for scenario in $scenarios; do
    if [ -f "$logs/$scenario.log" ]; then
      echo "== molecule test -s $scenario"
      cat "$logs/$scenario.log"
    fi
  done
done
echo "== scenarios"
tail -q -n 1 "$logs"/*.log | grep -E ' (passed|FAILED) ' || true
exit "$failed"
