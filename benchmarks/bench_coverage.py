"""Coverage of every interval of analysis/ on planted worlds, per quantity and kind (docs/statistics.md §6).

    python benchmarks/bench_coverage.py [--worlds 25] [--kinds clean,horizon,…] [--formulation two_part|cure|both]
                                        [--seed 0] [--json OUT]

Prints the coverage table of the 95 % intervals (goal: ≥ 90 % everywhere a truth is defined) and the
verdict rule's decisiveness at 90 %, with the wall time per world. ``--worlds`` counts worlds per kind;
the default (25 × 9 kinds = 225) meets the issue's "≥ 200 worlds". ``--formulation both`` runs the t*
fit both ways on the same worlds: the comparison behind the default (two-part) choice.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.coverage import coverage  # noqa: E402
from analysis.planted import KINDS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=25, help="worlds per kind")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--formulation", default="two_part", choices=("two_part", "cure", "both"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the tables here as JSON")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    formulations = ("two_part", "cure") if args.formulation == "both" else (args.formulation,)
    tables = []
    for formulation in formulations:
        table = coverage(kinds, args.worlds, args.seed, formulation=formulation)
        tables.append(table)
        worlds = args.worlds * len(kinds)
        print(table.format())
        print(f"{worlds} worlds in {table.seconds:.0f} s: {table.seconds / worlds:.2f} s per world "
              f"(generation, events and all fits; wall time on a shared machine)\n")
        short = [f"{r.kind}/{r.quantity} {r.rate:.0%} (bias {r.bias:+.3g})" for r in table.rows
                 if r.n and r.rate < 0.9]
        print("below 90 %: " + ("; ".join(short) if short else "none") + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([t.as_dict() for t in tables], indent=1, default=str))


if __name__ == "__main__":
    main()
