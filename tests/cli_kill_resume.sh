# kill -9 mid-run, then --resume: the final adapter equals an uninterrupted run's. Two kills at
# random moments and one while a checkpoint is being written; at least one must land mid-run or
# the test proves nothing and fails (scripts/kill_trials.sh 20 for the count in docs/reliability.md).
set -euo pipefail
MIN_KILLED=1 bash "$2/scripts/kill_trials.sh" 2 "$1" 1
