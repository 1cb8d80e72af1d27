"""``mprm synth``: write a synthetic corpus, benchmark, Best-of-N set and images.

Layout and parameters: docs/synthetic_data.md. ``--rollouts`` counts rollouts per source.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="folder to write (annotations/, benchmark/, bon/, images/, synth.json)")
    parser.add_argument("--sources", type=int, default=3, help="number of source files annotations/synth_shapes_NN.jsonl (default 3)")
    parser.add_argument("--rollouts", type=int, default=200, help="rollouts PER SOURCE (default 200)")
    parser.add_argument("--benchmark-items", type=int, default=60, help="VisualProcessBench-style items in benchmark/test.jsonl (default 60)")
    parser.add_argument("--bon-items", type=int, default=0, help="Best-of-N items (8 candidates each) in bon/test.jsonl; 0 writes none (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same arguments give byte-identical files (default 0)")
    parser.add_argument("--no-images", action="store_true", help="reference image paths but write no PNGs (for benchmarks of the data layer)")
    parser.add_argument("--step-chars", type=int, default=None, help="pad every step to about C characters with neutral filler (the real corpus: ~300)")


def run(args: argparse.Namespace) -> int:
    from mprm.data.synth import generate

    start = time.perf_counter()
    summary = generate(  # bad arguments raise the library's UserError
        args.output,
        sources=args.sources,
        rollouts=args.rollouts,
        benchmark_items=args.benchmark_items,
        bon_items=args.bon_items,
        seed=args.seed,
        images=not args.no_images,
        step_chars=args.step_chars,
    )
    seconds = time.perf_counter() - start
    corpus, bench, bon = summary["corpus"], summary["benchmark"], summary["bon"]
    print(f"wrote {args.output} in {seconds:.1f}s")
    print(
        f"  corpus: {len(summary['annotation_files'])} sources, {corpus['rollouts']} rollouts, {corpus['steps']} steps "
        f"({corpus['steps_per_rollout']:.2f}/rollout), mean MC {corpus['mean_mc']:.4f}, "
        f"error steps {100 * corpus['error_step_ratio']:.2f}%, mixed rollouts {100 * corpus['mixed_share']:.2f}%"
    )
    print(
        f"  label noise: {100 * corpus['wrong_rollout_share']:.1f}% truly wrong rollouts, "
        f"false negatives {100 * corpus['false_negative_rate']:.2f}% of correct steps, "
        f"false positives {100 * corpus['false_positive_rate']:.1f}% of wrong steps, "
        f"{corpus['unannotated_steps']} unannotated steps"
    )
    print(
        f"  benchmark: {bench['items']} items ({bench['two_image_items']} with two images), {bench['steps']} steps: "
        f"{bench['correct']} correct, {bench['incorrect']} incorrect, {bench['neutral']} neutral -> {bench['path']}"
    )
    if bon:
        print(f"  best-of-n: {bon['items']} items x 8 candidates, {bon['correct_candidates']} correct -> {bon['path']}")
    print(f"  images: {summary['images_written']} PNGs written" + (" (--no-images)" if args.no_images else ""))
    return 0
