"""Capture throughput on the real Gemma 3 270M base, side by side with a plain Hugging Face forward.

    python benchmarks/capture.py [--batch 16 --seq 128 --repeats 3]

Prints tokens/s for: featurescope capture of one middle layer and of all layers (reduction "all": every token's
activation is kept, as HF's output_hidden_states keeps them); the plain HF body forward returning all hidden states
(no unembedding); and the HF full forward with the 262k-vocab unembedding. Targets (issue 2): capture(all layers) >=
0.9x HF body; capture(middle layer) >= 1.8x HF full forward. Timings are best-of-N, interleaved, in one process.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import featurescope as fs
from featurescope.formatting import FormattedPrompt
from featurescope.models import OFFLINE_MODELS, converted_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    model = fs.load_model("offline:gemma-3-270m")
    hf = AutoModelForCausalLM.from_pretrained(
        str(converted_dir(OFFLINE_MODELS["gemma-3-270m"])), dtype=torch.float32
    ).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 200_000, (args.batch, args.seq), generator=g)
    ids[:, 0] = model.tokenizer.bos_token_id
    prompts = [
        FormattedPrompt(
            text="",
            tokens=row.clone(),
            role_ids=torch.zeros(args.seq, dtype=torch.long),
            last_prompt_index=args.seq - 1,
            kind="transcript",
            messages=[],
            has_response=False,
        )
        for row in ids
    ]
    mid = model.resid_hook(model.n_layers // 2)
    all_hooks = fs.default_hooks(model)
    n_tok = args.batch * args.seq

    def fs_mid():
        fs.capture(model, prompts, [mid], reduction="all", batch_size=args.batch, progress=False)

    def fs_all():
        fs.capture(model, prompts, all_hooks, reduction="all", batch_size=args.batch, progress=False)

    def tl_body():  # the TransformerLens forward alone, no hooks: what capture pays on top of it is featurescope's
        with torch.inference_mode():
            model.tl(ids, stop_at_layer=model.n_layers, return_type=None)

    def hf_body():
        with torch.inference_mode():
            hf.model(ids, output_hidden_states=True)

    def hf_full():
        with torch.inference_mode():
            hf(ids, output_hidden_states=True)

    runs = {
        "featurescope capture, middle layer": fs_mid,
        "featurescope capture, all layers": fs_all,
        "TransformerLens forward, no hooks (no unembed)": tl_body,
        "HF forward, all hidden states (no unembed)": hf_body,
        "HF full forward with unembedding": hf_full,
    }
    best = {k: float("inf") for k in runs}
    for f in runs.values():  # warm-up
        f()
    for _ in range(args.repeats):
        for k, f in runs.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    tps = {k: n_tok / v for k, v in best.items()}
    ratios = {
        "capture_all / hf_body (target >= 0.9)": tps["featurescope capture, all layers"]
        / tps["HF forward, all hidden states (no unembed)"],
        "capture_mid / hf_full (target >= 1.8)": tps["featurescope capture, middle layer"]
        / tps["HF full forward with unembedding"],
        "capture_all / TL forward (featurescope overhead)": tps["featurescope capture, all layers"]
        / tps["TransformerLens forward, no hooks (no unembed)"],
        "TL forward / hf_body (TransformerLens' own speed)": tps["TransformerLens forward, no hooks (no unembed)"]
        / tps["HF forward, all hidden states (no unembed)"],
    }
    print(
        f"Gemma 3 270M base, batch {args.batch} x {args.seq} tokens, {torch.get_num_threads()} threads, best of {args.repeats}"
    )
    for k, v in tps.items():
        print(f"  {k:46s} {v:8.0f} tok/s")
    for k, v in ratios.items():
        print(f"  {k:46s} {v:8.2f}x")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"tokens_per_s": tps, "ratios": ratios, "batch": args.batch, "seq": args.seq}, indent=2)
        )


if __name__ == "__main__":
    main()
