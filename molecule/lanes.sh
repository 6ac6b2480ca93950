#!/usr/bin/env bash
# Runs Molecule scenarios in lanes side by side: each argument is one lane,
# a list of steps run one after the other. A step is a scenario name, or
# make:TARGET for a make target (`make test` puts lint and the unit tests in
# the lanes too). Scenarios share no hosts and no ports (each has its own host
# names, and the lab inventory gives each host its own port range; the unit
# tests take ports the kernel hands out), and most of a scenario's time is
# waiting on servers and packages, so two lanes fit on two cores.
#   molecule/lanes.sh "docker models serving gateway" "default"
# Each step's log is printed when its lane is done; exits non-zero when any
# step failed (a failed step ends its lane).
set -uo pipefail
logs=${MOLECULE_LOG_DIR:-.cache/molecule-logs}
mkdir -p "$logs"
# Molecule puts ~/.ansible/collections first on the collections path: a copy
# of this collection left there by an earlier run would shadow the checkout
# (molecule/config.yml turns the copying off).
rm -rf "${HOME}/.ansible/collections/ansible_collections/mlserve"

run_step() {
  case $1 in
    make:*) "${MAKE:-make}" --no-print-directory "${1#make:}" ;;
    *) molecule -c molecule/config.yml test -s "$1" ;;
  esac
}

lane() {
  for step in $1; do
    log="$logs/${step#make:}.log"
    started=$(date +%s)
    if run_step "$step" >"$log" 2>&1; then
      echo "${step#make:} passed in $(($(date +%s) - started)) s" >>"$log"
    else
      echo "${step#make:} FAILED after $(($(date +%s) - started)) s" >>"$log"
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
for steps in "$@"; do
  for step in $steps; do
    if [ -f "$logs/${step#make:}.log" ]; then
      case $step in
        make:*) echo "== make ${step#make:}" ;;
        *) echo "== molecule test -s $step" ;;
      esac
      cat "$logs/${step#make:}.log"
    fi
  done
done
echo "== steps"
tail -q -n 1 "$logs"/*.log | grep -E ' (passed|FAILED) ' || true
exit "$failed"
