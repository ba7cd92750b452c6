"""Does a batched row compute what the model computes? Shown on the full-size GLM-4.6V-Flash architecture.

Random weights make greedy agreement a coin flip (the next-token distribution is nearly flat, so
any rounding difference picks another near-tie), so two other measures:
(a) teacher forcing: N requests (photos of several sizes) are prefilled together into the engine's
    slots and fed the same T tokens through the captured decode step; each position's logits are
    compared with transformers' own forward over the whole sequence, one request at a time: max abs
    difference and top-1 agreement, in the precision that runs; once with the checkpoint's head,
    once with it scaled by `--scale` (a peaked distribution, as trained models have);
(b) with the scaled head, 64 greedy requests run together through the batching loop, then each
    alone through the same loop: how many answers are identical token for token.

GPU:  OUT=/some/dir python3 bench/gpu_batch_correctness.py --quantization bf16
      (writes $OUT/gpu_batch_correctness_bf16.json)
CPU dry run on the tiny checkpoint:  PYTHONPATH=. .venv/bin/python bench/gpu_batch_correctness.py --tiny
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from gpu_engine_bench import Recorder, product_photo  # sibling script in bench/

from shared.settings import Settings
from worker.inference.batched import BatchedEngine, build_batched_engine
from worker.inference.engine import HFEngine
from worker.inference.engine_contract import GenerationParams, InferenceRequest
from worker.inference.families.glm4v_batch import BATCH_SUPPORT
from worker.inference.loader import load_engine
from worker.inference.placeholder.checkpoint import build_checkpoint

TASKS = ("describe", "ocr", "copy", "ask")


def greedy_request(index: int, new: int) -> InferenceRequest:
    size = (1024 - 48 * (index % 8), 768 - 32 * (index // 8 % 4))
    params = GenerationParams(max_new_tokens=new, temperature=0.0, top_p=1.0, repetition_penalty=1.0)
    task = TASKS[index % len(TASKS)]
    extra: dict[str, Any] = {"prompt": "What is it made of?"} if task == "ask" else {}
    if task == "copy":
        extra["options"] = {"channel": "title"}
    return InferenceRequest(task=task, image=product_photo(size), generation=params, **extra)  # type: ignore[arg-type]


def reference_logits(base: HFEngine, inputs: dict[str, Any], teacher: Any) -> Any:
    """transformers' own forward over prompt + teacher tokens: logits `(T, vocab)` from the prompt's last position."""
    model = base.model
    prompt = inputs["input_ids"].shape[1]
    extended = dict(inputs)
    extended["input_ids"] = torch.cat([inputs["input_ids"], teacher[None, :-1]], dim=1)
    extended["attention_mask"] = torch.ones_like(extended["input_ids"])
    if "mm_token_type_ids" in inputs:
        zeros = torch.zeros(1, teacher.shape[0] - 1, dtype=inputs["mm_token_type_ids"].dtype)
        extended["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], zeros], dim=1)
    placed = {k: v.to(model.device) for k, v in extended.items()}
    placed["pixel_values"] = placed["pixel_values"].to(base.pixel_dtype)
    hidden = model.model(**placed, use_cache=False).last_hidden_state[0, prompt - 1 :]
    return model.lm_head(hidden).float()


def teacher_forced(base: HFEngine, engine: BatchedEngine, requests: int, steps: int) -> dict[str, Any]:
    """(a): batched prefill + captured steps against the model's forward, per position."""
    runner = engine.scheduler.runner  # the loop is idle: its thread holds nothing while no ticket waits
    prepared = [base.prepare(greedy_request(i, steps)) for i in range(requests)]
    staged = [runner.stage(p.inputs) for p in prepared]
    vocab = base.model.get_output_embeddings().weight.shape[0]
    teacher = torch.randint(0, vocab, (requests, steps), generator=torch.Generator().manual_seed(7))
    slots = list(range(requests))
    with torch.inference_mode():
        joined = runner.kernels.prefill(staged, slots)
        batched = [torch.stack([row.logits for row in joined]).float()]
        lengths = [row.cached for row in joined]
        positions = [row.next_position for row in joined]
        for t in range(steps - 1):
            logits = runner.steps(teacher[:, t].tolist(), positions, lengths, max(lengths) + 1)[:requests]
            batched.append(logits.float().clone())
            lengths = [n + 1 for n in lengths]
            positions = [p + 1 for p in positions]
        ours = torch.stack(batched, dim=1)  # (requests, steps, vocab)
        diffs, agree, total, margins = [], 0, 0, []
        for i, p in enumerate(prepared):
            ref = reference_logits(base, p.inputs, teacher[i])
            diffs.append(float((ours[i] - ref).abs().max()))
            agree += int((ours[i].argmax(-1) == ref.argmax(-1)).sum())
            total += ref.shape[0]
            top2 = ref.topk(2, dim=-1).values
            margins.append(float((top2[:, 0] - top2[:, 1]).median()))
            ref_scale = float(ref.abs().max())
    return {
        "requests": requests,
        "positions_each": steps,
        "max_abs_diff": round(max(diffs), 5),
        "max_abs_diff_per_request": [round(d, 5) for d in diffs],
        "logit_scale_max_abs": round(ref_scale, 3),
        "median_top1_top2_margin": round(sorted(margins)[len(margins) // 2], 5),
        "top1_agreement": round(agree / total, 5),
        "positions_compared": total,
    }


def greedy_together_vs_alone(engine: BatchedEngine, count: int, new: int) -> dict[str, Any]:
    """(b): the same greedy requests in one batch and one at a time through the same loop."""
    requests = [greedy_request(i, new) for i in range(count)]
    with ThreadPoolExecutor(count) as pool:
        together = list(pool.map(engine.run, requests))
    alone = [engine.run(r) for r in requests]
    same = [a.text == b.text for a, b in zip(together, alone, strict=True)]
    return {
        "requests": count,
        "new_tokens": new,
        "identical": sum(same),
        "completion_tokens": [r.usage["completion_tokens"] for r in together],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny checkpoint on CPU (a dry run)")
    parser.add_argument("--quantization", default="bf16")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--greedy", type=int, default=64)
    parser.add_argument("--new", type=int, default=48)
    parser.add_argument("--scale", type=float, default=12.0)
    args = parser.parse_args()
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    rec = Recorder(out)
    rec.path = out / f"gpu_batch_correctness_{args.quantization}.json" if out else None
    root = Path(tempfile.gettempdir(), "glm46v-flash-random" if not args.tiny else "glm46v-tiny-bench")
    device = "cpu" if args.tiny else "cuda"
    build_checkpoint(root, "glm4v", full_size=not args.tiny, device=device)
    settings = Settings(
        model=str(root), quantization="fp32" if args.tiny else args.quantization, device=device,
        data_dir=Path(tempfile.mkdtemp()), gpu_engine="sequential", gpu_max_batch=args.greedy,
        gpu_max_seq_tokens=2048, gpu_interactive_slots=0,
    )  # fmt: skip
    base = load_engine(settings)
    assert isinstance(base, HFEngine)
    rec.put("device", "cpu" if args.tiny else torch.cuda.get_device_name())
    rec.put("quantization", base.quantization)
    engine = build_batched_engine(base, BATCH_SUPPORT, settings)
    rec.put("teacher_forced_checkpoint_head", teacher_forced(base, engine, args.requests, args.steps))
    with torch.no_grad():
        base.model.lm_head.weight.mul_(args.scale)  # in place: the captured graphs read the same memory
    rec.put("head_scale", args.scale)
    rec.put("teacher_forced_peaked_head", teacher_forced(base, engine, args.requests, args.steps))
    rec.put("greedy_together_vs_alone", greedy_together_vs_alone(engine, args.greedy, args.new))
    engine.scheduler.close()


if __name__ == "__main__":
    main()
