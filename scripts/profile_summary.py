#!/usr/bin/env python3
"""Where a training step's time goes, from a LibTorch profiler trace (mixlora-bench --profile).

The legacy trace holds each operator's inclusive time; self time is computed here by nesting
(per thread, an event's self time is its duration minus its direct children's), so the
categories add up to the profiled time without counting a matmul under aten::linear twice.

  profile_summary.py FILE [N]         top N operators by self time (default 25), then categories
  profile_summary.py --json FILE      the categories as JSON (docs/benchmarks.md tables)
"""
import collections
import json
import sys

# First match wins; an operator in none of them is "other".
CATEGORIES = [
    ("dropout masks", ("aten::bernoulli", "mixlora::dropout_mask")),
    ("matmul", ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm", "aten::dot",
                "aten::mv", "aten::_mkldnn", "aten::mkldnn")),
    ("attention", ("aten::_scaled_dot_product", "aten::scaled_dot_product", "aten::_efficient_attention",
                   "aten::_flash_attention")),
    ("lm loss", ("aten::log_softmax", "aten::_log_softmax", "aten::nll_loss", "aten::cross_entropy",
                 "aten::logsumexp")),
    ("copies and casts", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::contiguous", "aten::clone",
                          "aten::cat", "aten::stack", "aten::index", "aten::index_select", "aten::index_add",
                          "aten::index_put", "aten::gather", "aten::scatter", "aten::repeat", "aten::embedding",
                          "aten::_cat", "aten::masked_select", "aten::nonzero", "aten::sort", "aten::topk",
                          "aten::argsort")),
    ("allocation", ("aten::empty", "aten::zeros", "aten::ones", "aten::full", "aten::zero_", "aten::fill_",
                    "aten::resize_", "aten::new_", "aten::empty_like", "aten::zeros_like")),
    ("views and dispatch", ("aten::select", "aten::as_strided", "aten::resolve_conj", "aten::t", "aten::transpose",
                            "aten::reshape", "aten::_reshape_alias", "aten::view", "aten::slice", "aten::squeeze",
                            "aten::unsqueeze", "aten::expand", "aten::permute", "aten::linear", "aten::matmul",
                            "aten::narrow", "aten::split", "aten::chunk", "aten::unbind", "aten::flatten",
                            "aten::detach", "aten::alias", "aten::numpy_T", "aten::_unsafe_view")),
    ("autograd engine", ("autograd::", "torch::autograd::")),
    ("elementwise", ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::silu", "aten::gelu",
                     "aten::sigmoid", "aten::rsqrt", "aten::pow", "aten::mean", "aten::sum", "aten::neg",
                     "aten::exp", "aten::where", "aten::masked_fill", "aten::softmax", "aten::_softmax",
                     "aten::addcmul", "aten::addcdiv", "aten::sqrt", "aten::lerp", "aten::maximum",
                     "aten::clamp", "aten::dropout", "aten::native_dropout", "aten::tanh",
                     "aten::_foreach", "aten::threshold", "aten::ge", "aten::lt", "aten::eq", "aten::ne",
                     "aten::gt", "aten::le", "aten::bitwise", "aten::reciprocal", "aten::rand", "aten::norm",
                     "aten::linalg_vector_norm", "aten::max", "aten::min", "aten::cumsum", "aten::abs")),
]


def category(name):
    op = name.split(" ")[0]
    # An autograd node ("MulBackward0") does its arithmetic in aten children; what is left as
    # its self time is the work its formula does outside recorded ops.
    if op.endswith(("Backward0", "Backward1", "Backward2")):
        return "backward formulas"
    for label, prefixes in CATEGORIES:
        if any(op.startswith(p) for p in prefixes):
            return label
    return "other"


def self_times(events):
    """Self microseconds per event name: duration minus the durations of direct children."""
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    self_us = collections.Counter()
    count = collections.Counter()
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end time, name, self time so far]
        def close(entry):
            self_us[entry[1]] += max(entry[2], 0.0)
        for e in thread_events:
            while stack and e["ts"] >= stack[-1][0]:
                close(stack.pop())
            if stack:
                stack[-1][2] -= e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], float(e["dur"])])
            count[e["name"]] += 1
        while stack:
            close(stack.pop())
    return self_us, count


def main():
    as_json = sys.argv[1] == "--json"
    path = sys.argv[2] if as_json else sys.argv[1]
    events = json.load(open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    self_us, count = self_times(events)
    total = sum(self_us.values())
    categories = collections.Counter()
    for name, us in self_us.items():
        categories[category(name)] += us
    if as_json:
        print(json.dumps({"total_ms": total / 1e3, "categories_ms": {k: v / 1e3 for k, v in categories.items()}}))
        return
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    print(f"{'self ms':>10} {'calls':>6}  operator")
    for name, us in self_us.most_common(top):
        print(f"{us / 1e3:10.1f} {count[name]:6d}  {name}")
    print(f"\n{'self ms':>10} {'share':>6}  category (all threads, {total / 1e3:.1f} ms profiled)")
    for label, us in categories.most_common():
        print(f"{us / 1e3:10.1f} {100 * us / max(total, 1):5.1f}%  {label}")


if __name__ == "__main__":
    main()
