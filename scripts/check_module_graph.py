#!/usr/bin/env python3
"""The module stack of src/mixlora: which folder includes which, and whether it has a cycle.

Reads every `#include "mixlora/<module>/..."` under src/mixlora, prints the modules bottom-up
(each after everything it includes) and exits 1 naming the files of any cycle.
Usage: python3 scripts/check_module_graph.py [REPO_ROOT]
"""
import collections
import os
import re
import sys

INCLUDE = re.compile(r'#include "mixlora/(\w+)/')


def module_graph(src):
    edges = collections.defaultdict(dict)  # module -> {included module: first file that does it}
    for root, _, files in os.walk(src):
        for name in sorted(files):
            path = os.path.join(root, name)
            module = os.path.relpath(path, src).split(os.sep)[0]
            edges.setdefault(module, {})
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = INCLUDE.match(line)
                    if m and m.group(1) != module:
                        edges[module].setdefault(m.group(1), os.path.relpath(path, os.path.dirname(src)))
    return edges


def stack_order(edges):
    """Modules bottom-up, or (None, cycle) when the graph has one."""
    order, state = [], {}

    def visit(module, path):
        if state.get(module) == "done":
            return None
        if state.get(module) == "open":
            return path[path.index(module):] + [module]
        state[module] = "open"
        for dep in sorted(edges.get(module, {})):
            cycle = visit(dep, path + [module])
            if cycle:
                return cycle
        state[module] = "done"
        order.append(module)
        return None

    for module in sorted(edges):
        cycle = visit(module, [])
        if cycle:
            return None, cycle
    return order, None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    edges = module_graph(os.path.join(root, "src", "mixlora"))
    order, cycle = stack_order(edges)
    if cycle:
        links = [f"{a} -> {b} ({edges[a][b]})" for a, b in zip(cycle, cycle[1:])]
        print("module cycle: " + "; ".join(links), file=sys.stderr)
        return 1
    for module in order:
        print(f"{module}: {' '.join(sorted(edges[module])) or '(leaf)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
