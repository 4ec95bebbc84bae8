#!/usr/bin/env python3
"""Sums a LibTorch profiler trace (mixlora-bench --profile) by operator: self time is not in
the legacy trace, so this reports total time per op name, top N. Usage: profile_summary.py FILE [N]"""
import collections
import json
import sys

events = json.load(open(sys.argv[1]))
events = events["traceEvents"] if isinstance(events, dict) else events
total = collections.Counter()
count = collections.Counter()
for e in events:
    if e.get("ph") == "X":
        total[e["name"]] += e.get("dur", 0)
        count[e["name"]] += 1
for name, us in total.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 30):
    print(f"{us / 1e3:10.1f} ms {count[name]:6d}x  {name}")
