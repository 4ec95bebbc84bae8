# kill -9 at random moments, then --resume: the final adapter equals an uninterrupted run's
# (3 trials here; scripts/kill_trials.sh 20 for the count in docs/reliability.md).
set -euo pipefail
bash "$2/scripts/kill_trials.sh" 3 "$1"
