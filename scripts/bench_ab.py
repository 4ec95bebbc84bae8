#!/usr/bin/env python3
"""Compares two benchmark commands on a machine whose speed drifts: runs them in interleaved
rounds (A B, then B A, ...) so that each ratio is between runs seconds apart, and reports the
median of the per-round ratios with its spread (docs/benchmarks.md).

Each command is a shell command containing {json}: the path it writes its result to, either a
mixlora-bench --json report (the run named by --run, default the first) or a flat object with
ms_per_step (scripts/bench_moe_peft.py). Per process it also records the CPU seconds in user
and kernel mode and the minor page faults (getrusage of the finished child).

  scripts/bench_ab.py --rounds 5 \\
      --a glibc 'build-glibc/bin/mixlora-bench --preset small --runs mixlora --json {json}' \\
      --b jemalloc 'build/bin/mixlora-bench --preset small --runs mixlora --json {json}'

Prints one line per process, then per metric the B/A ratios' median [min, max]; --json writes
everything. Exit status 1 when a command fails.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile


def step_ms(result, run):
    if "runs" in result:  # a mixlora-bench report
        runs = result["runs"]
        chosen = next((r for r in runs if r["name"] == run), None) if run else runs[0]
        if chosen is None:
            sys.exit(f"bench_ab: no run '{run}' in the report (runs: {[r['name'] for r in runs]})")
        return chosen["ms_per_step"]
    return result["ms_per_step"]


def measure(command, run, workdir):
    path = os.path.join(workdir, "result.json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command.replace("{json}", path), shell=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        sys.exit(f"bench_ab: '{command}' failed with exit status {done.returncode}")
    with open(path) as f:
        result = json.load(f)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"ms_per_step": step_ms(result, run), "user_s": user, "sys_s": system,
            "kernel_share": system / max(user + system, 1e-9), "minflt": after.ru_minflt - before.ru_minflt,
            "result": result}


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", nargs=2, metavar=("NAME", "COMMAND"), required=True)
    parser.add_argument("--b", nargs=2, metavar=("NAME", "COMMAND"), required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--run", help="run of a mixlora-bench report to read (default: its first)")
    parser.add_argument("--json", help="write rounds and summaries here")
    args = parser.parse_args()
    (a_name, a_cmd), (b_name, b_cmd) = args.a, args.b
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(args.rounds):
            order = [("a", a_cmd), ("b", b_cmd)] if i % 2 == 0 else [("b", b_cmd), ("a", a_cmd)]
            measured = {side: measure(cmd, args.run, workdir) for side, cmd in order}
            rounds.append(measured)
            for side, name in (("a", a_name), ("b", b_name)):
                m = measured[side]
                print(f"round {i + 1} {name}: {m['ms_per_step']:.1f} ms/step, user {m['user_s']:.1f} s, "
                      f"kernel {m['sys_s']:.1f} s ({100 * m['kernel_share']:.1f} %), {m['minflt']} minor faults",
                      flush=True)
    ratios = {
        f"speedup {b_name}/{a_name} (A ms / B ms)": [r["a"]["ms_per_step"] / r["b"]["ms_per_step"] for r in rounds],
        f"minor faults {b_name}/{a_name}": [r["b"]["minflt"] / max(r["a"]["minflt"], 1) for r in rounds],
        f"kernel share {a_name}": [r["a"]["kernel_share"] for r in rounds],
        f"kernel share {b_name}": [r["b"]["kernel_share"] for r in rounds],
    }
    summaries = {name: summary(values) for name, values in ratios.items()}
    for name, s in summaries.items():
        print(f"{name}: median {s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}] over {len(rounds)} rounds")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"a": a_name, "b": b_name, "commands": {"a": a_cmd, "b": b_cmd}, "rounds": rounds,
                       "summaries": summaries}, f, indent=1)


if __name__ == "__main__":
    main()
