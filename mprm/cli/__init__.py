"""The ``mprm`` console command.

Subcommands live in their own modules and are imported only when chosen, so that
``mprm select`` never pays for importing torch. Each module defines
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``; a user error
raised by ``run`` ends as one line and exit 2 (mprm.errors; ``--debug`` anywhere shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mprm.errors import run_entry, take_debug_flag

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "select": ("mprm.cli.select", "select a training subset (BIS or a baseline) from an MC-annotated corpus"),
    "synth": ("mprm.cli.synth", "write a synthetic corpus, benchmark and images for tests and the demo"),
    "tiny": ("mprm.cli.tiny", "write a tiny random backbone (optionally pretrained on synthetic data)"),
    "convert-internvl": ("mprm.cli.convert_internvl", "convert an original InternVL2.5 release to the native transformers layout"),
    "format": ("mprm.cli.format", "show what the model sees for one record: tokens, <prm> positions, labels, truncation"),
    "eval": ("mprm.eval.cli", "score a benchmark, recompute metrics, sweep checkpoints or rerank Best-of-N (same as eval.py)"),
    "report": ("mprm.cli.report", "compare finished runs with the paper's published numbers"),
    "demo": ("mprm.cli.demo", "run the whole pipeline end to end on CPU with a tiny model"),
}


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS)
    lines = "\n".join(f"  {n.ljust(width)}  {h}" for n, (_, h) in COMMANDS.items())
    return argparse.ArgumentParser(
        prog="mprm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Multimodal process reward models: data selection, training, evaluation.",
        epilog=f"commands:\n{lines}\n\nRun 'mprm COMMAND --help' for a command's options.",
        usage="mprm [-h] [--version] COMMAND ...",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = take_debug_flag(argv)
    top = _top_parser()
    top.add_argument("--version", action="store_true", help="print the version and exit")
    top.add_argument("--debug", action="store_true", help="show the traceback of a user error (or MPRM_DEBUG=1)")
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from mprm import __version__

        print(__version__)
        return 0
    name = argv[0]
    if name not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"mprm: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"mprm {name}", description=help_text)
    module.add_arguments(parser)
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    return run_entry(f"mprm {name}", lambda: module.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
