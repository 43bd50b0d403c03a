#!/usr/bin/env bash
# A stand-in for sbatch: start the job script ($1, written by Snakemake) as its own detached
# session and print a job id (its pid). Snakemake learns the job's end from the marker files the
# job script writes into .snakemake/ on the shared file system.
set -euo pipefail
setsid bash "$1" > /dev/null 2>&1 < /dev/null &
echo $!
