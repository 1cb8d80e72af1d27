"""Training throughput of the backbone: samples/s, tokens/s, padding ratio; MFU and peak memory on GPU.

    python benchmarks/train_throughput.py                      # CPU: the tiny Qwen2.5-VL
    python benchmarks/train_throughput.py --shape 7b --micro 2 # GPU: a 7B-shaped Qwen2.5-VL, random weights

The backbone is built from its config with random weights (no downloads). Example lengths come from
a seeded log-normal (``--mean-tokens``, like the real corpus's long-tailed rollouts) and batches are
formed by the trainer's own BatchPlan, once length-grouped and once at random, in the same run, so
the padding saving shows directly. Each micro batch is a forward + backward through the language
model with the reward head's read-out (the Yes/No rows of the LM head at every 8th position);
images are left out (their cost does not depend on batching). MFU counts 6 x trainable parameters
x padded tokens (attention FLOPs left out, so it is a lower bound) against ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import torch

from mprm.train.sampler import BatchPlan

QWEN_7B = dict(
    text_config=dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                     intermediate_size=18944, vocab_size=152064, max_position_embeddings=32768,
                     rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
    vision_config=dict(depth=32, hidden_size=1280, num_heads=16, intermediate_size=3420, out_hidden_size=3584,
                       window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
)


def build_backbone(shape: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    if shape == "tiny":
        from mprm.models.tiny import build_tiny

        with tempfile.TemporaryDirectory() as tmp:
            config = AutoConfig.from_pretrained(build_tiny("qwen2_5_vl", tmp))
    else:
        config = Qwen2_5_VLConfig(**QWEN_7B)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).to(device)
    for name, p in model.named_parameters():
        p.requires_grad_("visual" not in name or "merger" in name)  # frozen vision tower (METHOD.md 6)
    model.config.use_cache = False
    if shape != "tiny":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def run_mode(model, lengths, *, group: bool, micro: int, batches: int, device, vocab: int) -> dict[str, float]:
    # one optimiser step of `batches` micro batches: both modes see the same examples, only grouped differently
    plan = BatchPlan(lengths, global_batch_size=micro * batches, micro_batch_size=micro, world_size=1, seed=0,
                     group_by_length=group)
    micro_batches = list(plan.step_micro_batches(0)[:, 0])
    lm, head = model.model, model.get_output_embeddings()
    real = padded = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for idx in micro_batches:
        lens = lengths[idx]
        width = int(lens.max())
        ids = torch.randint(0, vocab, (len(idx), width), device=device)
        mask = (torch.arange(width, device=device)[None, :] < torch.as_tensor(lens, device=device)[:, None]).long()
        hidden = lm(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = head(hidden[:, ::8])[..., :2].float()
        loss = -torch.log_softmax(logits, -1)[..., 0].mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        real, padded = real + int(lens.sum()), padded + width * len(idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {"micro_batches": len(micro_batches), "seconds": seconds, "samples_per_s": len(micro_batches) * micro / seconds,
           "tokens_per_s": real / seconds, "padded_tokens_per_s": padded / seconds, "padding_ratio": 1 - real / padded}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=("tiny", "7b"), default=None, help="default: 7b on GPU, tiny on CPU")
    p.add_argument("--micro", type=int, default=2, help="micro batch size")
    p.add_argument("--batches", type=int, default=40, help="micro batches per mode")
    p.add_argument("--examples", type=int, default=2048, help="examples whose lengths are drawn")
    p.add_argument("--mean-tokens", type=float, default=300.0, help="mean example length (real corpus: ~1,000-2,000)")
    p.add_argument("--max-tokens", type=int, default=8192, help="length cap (METHOD.md 6: 8192)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak (H100 SXM: 989)")
    p.add_argument("--output", help="write the results as JSON here too")
    args = p.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    shape = args.shape or ("7b" if cuda else "tiny")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = build_backbone(shape, device, dtype)
    model.train()
    rng = np.random.default_rng(0)
    sigma = 0.6
    lengths = np.clip(rng.lognormal(np.log(args.mean_tokens) - sigma**2 / 2, sigma, args.examples), 16,
                      args.max_tokens).astype(np.int64)
    vocab = model.get_output_embeddings().weight.shape[0]
    run_mode(model, lengths, group=False, micro=args.micro, batches=3, device=device, vocab=vocab)  # warm-up
    results: dict[str, object] = {"shape": shape, "device": str(device), "dtype": str(dtype), "micro": args.micro,
                                  "mean_tokens": float(lengths.mean())}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    results["trainable_params"] = trainable
    for name, group in (("length_grouped", True), ("random", False)):
        r = run_mode(model, lengths, group=group, micro=args.micro, batches=args.batches, device=device, vocab=vocab)
        if cuda:
            r["mfu"] = 6 * trainable * r["padded_tokens_per_s"] / (args.peak_tflops * 1e12)
        results[name] = r
    text = json.dumps(results, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
