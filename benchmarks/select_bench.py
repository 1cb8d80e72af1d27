"""Benchmark: ``mprm select`` end to end against a straightforward stdlib-json implementation of
the same BIS rule, on a VisualPRM400K-scale corpus written here (METHOD.md 1, 3 and 9).

Full scale is 565,096 rollouts in 38 files, ~300-character steps, 5.6 steps per rollout (about
1.3 GB of jsonl); the 1/10 scale (``--scale 0.1``, 56,510 rollouts, 0.13 GB) is where start-up
(imports, worker processes) and output writing weigh most. Both run as subprocesses in the same
invocation, alternating ``--repeat`` times; the script reports median wall-clock and CPU seconds,
the speed-up, peak RSS, the load average, and checks that both chose the same rollouts.
Targets (docs/selection.md): >= 3x at 1/10 scale and >= 3.75x at full scale, wall-clock, on two
free cores.

    .venv/bin/python benchmarks/select_bench.py --scale 0.1 --scale 1.0 --repeat 3 --workdir /tmp/mprm_bench --keep --reuse
    .venv/bin/python benchmarks/select_bench.py --scale 0.1        # a quick run

With several ``--scale`` each gets its own sub-folder of ``--workdir``. The corpus is deleted
afterwards unless ``--keep``; ``--reuse`` takes a kept one of the same size. The load average
before and after is printed with the figures: on a shared machine the wall-clock speed-up says
as much about the other jobs as about this code (the CPU ratio much less so).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

FULL_ROLLOUTS = 565_096
FULL_FILES = 38
WORDS = ("the circle square triangle left right above below red blue green count of shapes is are "
         "so we see that there three two four answer therefore image shows total area angle").split()

BASELINE = r'''
import json, math, sys
from pathlib import Path

def main(src, out, fraction, alpha):
    files = sorted(Path(src).glob("*.jsonl"), key=lambda p: p.name)
    with open(Path(out) / "selected.jsonl", "w") as fo:
        for path in files:
            lines = path.read_text(encoding="utf-8").split("\n")
            ranked = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                rec = json.loads(line)
                scores = [s["score"] for s in rec["steps_with_score"]]
                pos = [s for s in scores if s > 0]
                p = len(pos) / len(scores)
                r = sum(pos) / len(pos) if pos else 1.0
                ranked.append(((p * (1 - p) + alpha) * r, i))
            order = sorted(range(len(ranked)), key=lambda j: -ranked[j][0])
            k = max(1, math.floor(len(ranked) * fraction + 1e-9))
            for j in sorted(order[:k]):
                i = ranked[j][1]
                rec = json.loads(lines[i])
                steps = rec.pop("steps_with_score")
                scores = [s["score"] for s in steps]
                row = {"id": str(rec.pop("id")) if "id" in rec else f"{path.stem}:{i + 1}", "source": path.stem,
                       "images": [rec.pop("image")], "question": rec.pop("question_orig", None) or rec.get("question"),
                       "answer": rec.pop("answer"), "steps": [s["step"] for s in steps], "mc_scores": scores,
                       "num_mc_correct": [s["num_mc_correct"] for s in steps],
                       "num_mc_total": [s["num_mc_total"] for s in steps],
                       "labels": [1.0 if s > 0 else 0.0 for s in scores], "extra": rec}
                fo.write(json.dumps(row, ensure_ascii=False) + "\n")

main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
'''

MEASURE = r'''
import resource, runpy, sys, time
t = time.perf_counter()
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__") if sys.argv[0].endswith(".py") else __import__("mprm.cli", fromlist=["main"]).main(sys.argv[1:])
finally:
    wall = time.perf_counter() - t
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print(f"MEASURE {wall:.3f} {max(me.ru_maxrss, kids.ru_maxrss)} {cpu:.3f}", file=sys.stderr)
'''


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


def write_corpus(root: Path, *, rollouts: int, files: int, seed: int = 0, step_chars: int = 300) -> int:
    """VisualPRM400K-v1.1-Raw-shaped files; returns bytes written. MC scores K/16, with the
    corpus's ~3.6% error steps: after a rollout's first wrong step the scores are low."""
    rng = random.Random(seed)
    pool = [_text(rng, step_chars) for _ in range(4096)]
    questions = [_text(rng, 160) for _ in range(512)]
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    per_file = [rollouts // files + (1 if i < rollouts % files else 0) for i in range(files)]
    for f, count in enumerate(per_file):
        lines = []
        for i in range(count):
            n = min(12, max(1, int(rng.gauss(5.6, 2.0))))
            wrong = rng.randrange(n) if rng.random() < 0.2 else n
            steps = []
            for j in range(n):
                k = rng.choice((16, 16, 16, 15, 14, 12)) if j < wrong else rng.choice((0, 0, 0, 1, 2))
                steps.append({"step": pool[rng.randrange(4096)], "score": k / 16, "num_mc_correct": k, "num_mc_total": 16})
            q = questions[rng.randrange(512)]
            rec = {"image": f"images/src{f:02d}/{i}.png", "question": "<image>\n" + q, "question_orig": q,
                   "answer": str(rng.randrange(10)), "num_mc_sequences": 16, "steps_with_score": steps}
            lines.append(json.dumps(rec))
        data = ("\n".join(lines) + "\n").encode()
        (root / f"source_{f:02d}.jsonl").write_bytes(data)
        total += len(data)
    return total


def _measure(cmd: list[str], pythonpath: str | None = None) -> tuple[float, int, float]:
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env,
                          cwd=pythonpath)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("MEASURE ")][-1]
    _, wall, rss, cpu = line.split()
    return float(wall), int(rss) * 1024, float(cpu)


def _ids(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [json.loads(line)["id"] for line in f]


def _corpus(work: Path, rollouts: int, reuse: bool) -> int:
    """Write the corpus, or reuse one written before for the same size (``corpus.json``)."""
    marker = work / "corpus.json"
    if reuse and marker.exists() and json.loads(marker.read_text()).get("rollouts") == rollouts:
        size = json.loads(marker.read_text())["bytes"]
        print(f"corpus: reusing {rollouts:,} rollouts, {size / 1e9:.2f} GB in {work}")
        return size
    if work.exists():
        shutil.rmtree(work)
    t = time.perf_counter()
    size = write_corpus(work / "annotations", rollouts=rollouts, files=FULL_FILES)
    marker.write_text(json.dumps({"rollouts": rollouts, "bytes": size}))
    print(f"corpus: {rollouts:,} rollouts, {FULL_FILES} files, {size / 1e9:.2f} GB, written in {time.perf_counter() - t:.1f} s")
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, action="append", help="fraction of the full corpus size (1.0 = 565,096 "
                    "rollouts, 0.1 = the 1/10 scale); repeat the flag for several sizes (default 1.0)")
    ap.add_argument("--fraction", type=float, default=0.25, help="kept fraction rho")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=2, help="mprm select --workers")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; medians are reported")
    ap.add_argument("--workdir", default="/tmp/mprm_select_bench")
    ap.add_argument("--reuse", action="store_true", help="reuse a corpus of the same size left in --workdir by --keep")
    ap.add_argument("--keep", action="store_true", help="keep the corpus and outputs")
    ap.add_argument("--reference", help="also time the mprm package found in this folder (e.g. an exported older "
                    "commit: git archive COMMIT mprm | tar -x -C DIR), alternating with the others")
    args = ap.parse_args(argv)
    scales = args.scale or [1.0]
    results = []
    for scale in scales:
        root = Path(args.workdir).resolve()
        work = root if len(scales) == 1 else root / f"scale_{scale:g}"
        results.append(run_scale(work, scale, args))
        print(json.dumps(results[-1], indent=2), flush=True)
    print("\nscale  rollouts   GB     mprm wall/CPU s   stdlib wall/CPU s   speed-up  CPU ratio  load before->after"
          + ("  reference wall/CPU s  speed-up" if args.reference else ""))
    for r in results:
        print(f"{r['scale']:<6g} {r['rollouts']:<10,} {r['gigabytes']:<6.2f} {r['mprm_select_s']:>6.2f} / {r['mprm_cpu_s']:<8.2f}"
              f"{r['stdlib_json_s']:>6.2f} / {r['stdlib_cpu_s']:<10.2f} {r['speedup']:<9.2f} {r['cpu_time_ratio']:<10.2f}"
              f"{r['load_average_before'][0]:.1f} -> {r['load_average_after'][0]:.1f}"
              + (f"         {r['reference_s']:.2f} / {r['reference_cpu_s']:.2f}      {r['reference_speedup']:.2f}"
                 if "reference_s" in r else ""))
    return 0 if all(r["same_selection"] for r in results) else 1


def run_scale(work: Path, scale: float, args: argparse.Namespace) -> dict:
    """Write (or reuse) the corpus of one scale, time both implementations, check their choice."""
    rollouts = max(FULL_FILES, round(FULL_ROLLOUTS * scale))
    size = _corpus(work, rollouts, args.reuse)
    script = work / "baseline.py"
    script.write_text(BASELINE)
    fast_cmd = ["mprm", "select", "--input", str(work / "annotations"), "--strategy", "bis", "--fraction", str(args.fraction),
                "--alpha", str(args.alpha), "--workers", str(args.workers), "--output", str(work / "fast")]
    base_cmd = [str(script), str(work / "annotations"), str(work / "base"), str(args.fraction), str(args.alpha)]
    try:
        load_before = os.getloadavg()
        fast, base, ref = [], [], []
        ref_cmd = [*fast_cmd[:-1], str(work / "ref")]
        for _ in range(args.repeat):
            for d in ("fast", "base", "ref"):
                shutil.rmtree(work / d, ignore_errors=True)
                (work / d).mkdir()
            fast.append(_measure(fast_cmd))
            base.append(_measure(base_cmd))
            if args.reference:
                ref.append(_measure(ref_cmd, str(Path(args.reference).resolve())))
        load_after = os.getloadavg()
        same = _ids(work / "fast" / "selected.jsonl") == _ids(work / "base" / "selected.jsonl")
        (fast_wall, fast_rss, fast_cpu), (base_wall, base_rss, base_cpu) = _median(fast), _median(base)
        reference = {}
        if ref:
            ref_wall, ref_rss, ref_cpu = _median(ref)
            same = same and _ids(work / "ref" / "selected.jsonl") == _ids(work / "base" / "selected.jsonl")
            reference = {"reference": str(args.reference), "reference_s": round(ref_wall, 2), "reference_cpu_s": round(ref_cpu, 2),
                         "reference_speedup": round(base_wall / ref_wall, 2),
                         "reference_runs_wall_s": [round(r[0], 2) for r in ref]}
        return {"scale": scale, "rollouts": rollouts, "files": FULL_FILES, "gigabytes": round(size / 1e9, 3),
                "fraction": args.fraction, "workers": args.workers, "cpus": os.cpu_count(), "repeat": args.repeat,
                "mprm_select_s": round(fast_wall, 2), "stdlib_json_s": round(base_wall, 2),
                "speedup": round(base_wall / fast_wall, 2), "mprm_cpu_s": round(fast_cpu, 2),
                "stdlib_cpu_s": round(base_cpu, 2), "cpu_time_ratio": round(base_cpu / fast_cpu, 2),
                "mprm_peak_rss_gb": round(fast_rss / 1e9, 3), "stdlib_peak_rss_gb": round(base_rss / 1e9, 3),
                "same_selection": same, "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
                "runs_wall_s": {"mprm": [round(r[0], 2) for r in fast], "stdlib": [round(r[0], 2) for r in base]},
                "runs_cpu_s": {"mprm": [round(r[2], 2) for r in fast], "stdlib": [round(r[2], 2) for r in base]},
                **reference}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _median(runs: list[tuple[float, int, float]]) -> tuple[float, int, float]:
    """Median wall and CPU time, largest peak RSS."""
    walls, rss, cpus = zip(*runs)
    return statistics.median(walls), max(rss), statistics.median(cpus)


if __name__ == "__main__":
    raise SystemExit(main())
