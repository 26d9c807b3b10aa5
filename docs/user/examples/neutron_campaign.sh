#!/usr/bin/env bash
# A simulation campaign driven from an experiment's own machine with an INK token:
# upload the run's input, run the simulation as a batch job on the cluster, watch it,
# fetch the result. Nothing of the cluster is installed here: only `pip install ink-client`.
#
#   INK_HUB_URL=https://ink.example.org INK_TOKEN=... ./neutron_campaign.sh run042 100000
#
# (or run `ink login` once instead of setting INK_HUB_URL and INK_TOKEN)
set -euo pipefail

run=${1:?usage: $0 RUN_NAME [EVENTS]}
events=${2:-10000}
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# 1. the run's input, made here and uploaded to the cluster (home directory)
cat >"$workdir/$run.mac" <<MAC
/run/initialize
/gun/particle neutron
/gun/energy 14 MeV
/run/beamOn $events
MAC
ink files put --overwrite "$workdir/$run.mac" "$run.mac"

# 2. the job: a script run as you on the cluster, within your experiment's limits
cat >"$workdir/job.sh" <<'JOB'
#!/bin/bash
set -e
run=$RUN
mkdir -p "$HOME/sim-out"
echo "simulating $run on $(hostname) as $(id -un)"
# the real thing would be: source /cvmfs/.../setup.sh; simulate "$HOME/$run.mac"
awk '/beamOn/ {print "events", $2}' "$HOME/$run.mac" >"$HOME/sim-out/$run.txt"
echo "done: $HOME/sim-out/$run.txt"
JOB
job=$(ink jobs submit --name "sim-$run" --cpus 1 --memory 1G --walltime 0:30:00 \
        --env RUN="$run" --script "$workdir/job.sh")
echo "submitted job $job"

# 3. follow its output until it ends; a failed job stops the campaign (exit code 1)
if ! ink jobs logs --follow "$job"; then
  echo "could not follow job $job" >&2
  exit 7
fi
state=$(ink jobs show --json "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [[ "$state" != completed ]]; then
  echo "job $job $state; its stderr:" >&2
  ink jobs logs --stderr "$job" >&2
  exit 1
fi

# 4. the result back on this machine
ink files get "sim-out/$run.txt" "./$run.txt"
echo "result: $(cat "./$run.txt")"
