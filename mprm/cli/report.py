"""``mprm report RUNS_DIR --output OUT``: compare finished runs with the paper (issue 6 item 3).

Writes OUT/report.md, OUT/report.json and OUT/data_efficiency.png; see docs/reproduce.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run folders (searched recursively)")
    parser.add_argument("--output", "-o", required=True, metavar="OUT", help="folder for report.md/.json and the plot")
    parser.add_argument("--threshold-kind", choices=("fixed", "dev", "oracle"), default="oracle",
                        help="which eval threshold's results to show (default oracle, as the authors' code; "
                             "docs/decisions.md D-REPRO-3)")
    parser.add_argument("--only-runs", action="store_true",
                        help="leave out published rows for which there is no run of ours")
    parser.add_argument("--no-plot", action="store_true", help="do not draw data_efficiency.png")


def run(args: argparse.Namespace) -> int:
    from mprm.repro.write import write_report

    report = write_report(args.runs_dir, args.output, threshold_kind=args.threshold_kind,
                          only_runs=args.only_runs, plot=not args.no_plot)  # a missing folder: OSError, one line
    n_bad = len(report["incomplete"])
    print(f"report: {report['n_runs']} run folder(s), {n_bad} incomplete; threshold kind {args.threshold_kind}")
    for item in report["incomplete"]:
        print(f"  incomplete: {item['run']}: {'; '.join(item['problems'])}")
    for kind, path in report["paths"].items():
        print(f"  {kind}: {path}")
    return 0
