#!/bin/sh
# INK session batch script. It is the same for every job and holds no user value: sbatch passes
# the session's argv as this script's arguments, and the environment carries the rest.
exec "$@"
