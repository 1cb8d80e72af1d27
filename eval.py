"""Evaluate a step reward model: parse, build, run (the work is in mprm/eval; docs/evaluation.md).

    python eval.py --model DIR --benchmark test.jsonl --image-root DIR --output OUT [--resume]
    python eval.py --model BASE_CHECKPOINT_OR_HUB_ID --benchmark ... (zero-shot; --backbone, --head)
    python eval.py --predictions OUT/predictions.jsonl --output OUT2 [--dev dev_predictions.jsonl]
    python eval.py --checkpoints RUN_DIR --benchmark test.jsonl --image-root DIR --output OUT
    python eval.py --bon bon.jsonl --model DIR --image-root DIR --output OUT [--aggregate mean]
    accelerate launch --multi_gpu --num_processes N eval.py --model DIR ...   (sharded)

A user error is exit code 2 and one line ``eval.py: error: FILE[:LINE]: ...``; --debug (or
MPRM_DEBUG=1) shows the traceback.
"""

from mprm.eval.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
