#!/usr/bin/env python3
"""Per-request cost of a callgrind dump, grouped by where the code comes from.

    bench/callgrind_groups.py DUMP REQUESTS

DUMP is a callgrind output file (bench/callgrind keeps it with KEEP_TMP=1), REQUESTS
the requests it covers. Each function's own cost (callees excluded) is added to the
first group whose pattern matches its name; the table gives, per request, the
instructions and, when the dump has them (CACHE_SIM=1), the first-level instruction
and data cache misses and the mispredicted branches (conditional and indirect).
"""

import re
import sys
from collections import defaultdict

# First match wins: the order matters where names mix crates (a closure of authgate's
# inlined into a tokio function is named after the tokio function).
GROUPS = [
    ("HTTP headers (http, pingora-http)", r"^http::header|pingora_http|case_header"),
    ("memcpy, memmove, memset, memcmp", r"memcpy|memmove|memset|memcmp|memchr"),
    (
        "allocator (mimalloc, Vec growth)",
        r"^_?mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|finish_grow|RawVec",
    ),
    ("timers (tokio, pingora-timeout)", r"pingora_timeout|tokio::time|tokio::runtime::time"),
    ("tokio (tasks, I/O readiness)", r"tokio"),
    ("httparse", r"httparse"),
    ("the server's own functions (authgate, lean_core)", r"authgate::|lean_core::"),
    ("pingora-core", r"pingora_core"),
    ("Vec, Bytes: clone and drop", r"Vec<|bytes::|drop_in_place|Clone"),
]
OTHER = "everything else"


def self_costs(path):
    """{function: [cost per event]}, and the event names."""
    names, costs, events = {}, {}, []
    current, after_call = None, False

    def resolve(text):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), text)

    with open(path, encoding="utf-8", errors="replace") as dump:
        for line in dump:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("fn="):
                current = resolve(line[3:])
            elif line.startswith("cfn="):
                resolve(line[4:])
            elif line.startswith("calls="):
                after_call = True  # the next cost line is the call's, callees included
            elif current and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                if after_call:
                    after_call = False
                    continue
                values = [int(v) for v in line.split()[1:]]
                total = costs.setdefault(current, [0] * len(events))
                for i, v in enumerate(values):
                    total[i] += v
    return costs, events


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    costs, events = self_costs(sys.argv[1])
    requests = int(sys.argv[2])
    groups = defaultdict(lambda: [0] * len(events))
    for function, values in costs.items():
        group = next((g for g, rx in GROUPS if re.search(rx, function)), OTHER)
        groups[group] = [a + b for a, b in zip(groups[group], values)]

    def per(values, *wanted):
        if not all(e in events for e in wanted):
            return "-"
        return f"{sum(values[events.index(e)] for e in wanted) / requests:,.0f}"

    print("| code | instructions | I1 misses | D1 misses | mispredicted branches |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])
    totals = [sum(col) for col in zip(*groups.values())]
    for group, values in rows + [("total", totals)]:
        print(
            f"| {group} | {per(values, 'Ir')} | {per(values, 'I1mr')} "
            f"| {per(values, 'D1mr', 'D1mw')} | {per(values, 'Bcm', 'Bim')} |"
        )


if __name__ == "__main__":
    main()
