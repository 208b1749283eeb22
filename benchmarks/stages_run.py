"""Wall time of the whole ``featurescope stages`` run on the offline pair at one layer (target: < 15 minutes on CPU).

    python benchmarks/stages_run.py [--layer 9 --out runs/stages-bench] [--stand-in auto|always|never]

Runs, in one process and timed from before the models load to after ``summary.json`` is written:

    featurescope stages --base offline:gemma-3-270m --post offline:gemma-3-270m-sft \\
        --base-sae saes/gemma-3-270m/layer_9_resid_post --post-sae saes/gemma-3-270m-sft/layer_9_resid_post \\
        --layer 9 --out runs/stages-bench

(every part: transfer on plain + chat texts with CE-loss recovered, matching with both baselines, activation shift,
cards, persona vectors for all shipped traits; the crosscoder part reports that none is given).

``--stand-in auto`` (default) falls back, when the post-trained checkpoint or an SAE folder is missing, to a stand-in
of the same cost: the base Gemma loaded a second time as the "post-trained" model (Gemma chat template attached,
MLP output weights of the layers up to --layer perturbed by 2% seeded noise) and two synthetic 4,096-latent SAEs
(random unit decoders; the post SAE shares 75% of its rows with the base one). Its metrics are meaningless; its
time is the pipeline's. The printout says which was run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

LIMIT_S = 15 * 60


def synthetic_sae(d_in: int, d_sae: int, hook: str, model_name: str, rows: torch.Tensor):
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = hook
    cfg.metadata.model_name = model_name
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(rows.T / 60.0)  # Gemma's residual norms are in the thousands
        sae.b_enc.fill_(-1.5)
        sae.b_dec.zero_()
    sae.requires_grad_(False)
    return sae


def stand_in(args: argparse.Namespace) -> dict:
    import featurescope as fs
    from featurescope.posttrain import GEMMA_CHAT_TEMPLATE
    from featurescope.stages import StagesConfig, run_stages

    base = fs.load_model(args.base)
    post = fs.load_model(args.base, stage="post-trained")
    post.tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    post.info = dataclasses.replace(post.info, has_chat_template=True, name=f"{args.base} (perturbed stand-in)")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for L in range(args.layer + 1):
            w = post.tl.blocks[L].mlp.W_out
            w.mul_(1 + 0.02 * torch.randn(w.shape, generator=g).to(w.dtype))
    hook = base.resid_hook(args.layer)
    d = base.d_model
    W = torch.nn.functional.normalize(torch.randn(4096, d, generator=g), dim=-1)
    Wp = W.clone()
    Wp[3072:] = torch.nn.functional.normalize(torch.randn(1024, d, generator=g), dim=-1)
    bs = synthetic_sae(d, 4096, hook, base.name, W)
    ps = synthetic_sae(d, 4096, hook, post.name, Wp)
    return run_stages(
        base, post, bs, ps, hook, args.out, config=StagesConfig(), sae_names=("synthetic-base", "synthetic-post")
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="offline:gemma-3-270m")
    ap.add_argument("--post", default="offline:gemma-3-270m-sft")
    ap.add_argument("--base-sae", default="saes/gemma-3-270m/layer_9_resid_post")
    ap.add_argument("--post-sae", default="saes/gemma-3-270m-sft/layer_9_resid_post")
    ap.add_argument("--layer", type=int, default=9)
    ap.add_argument("--out", default="runs/stages-bench")
    ap.add_argument("--stand-in", default="auto", choices=["auto", "always", "never"])
    args, extra = ap.parse_known_args()
    real_ok = Path(args.base_sae, "cfg.json").exists() and Path(args.post_sae, "cfg.json").exists()
    if real_ok:
        try:
            from featurescope.models import OFFLINE_MODELS, adapter_path

            key = args.post.removeprefix("offline:")
            spec = OFFLINE_MODELS.get(key)
            real_ok = spec is None or spec.adapter is None or adapter_path(spec).exists()
        except Exception:
            pass
    use_stand_in = args.stand_in == "always" or (args.stand_in == "auto" and not real_ok)
    if args.stand_in == "never" and not real_ok:
        sys.exit("the post-trained checkpoint or an SAE folder is missing (see --help); use --stand-in auto")
    t0 = time.time()
    if use_stand_in:
        what = "STAND-IN (base Gemma perturbed + synthetic 4096-latent SAEs; metrics meaningless, time is real)"
        res = stand_in(args)
        timings = res["timings"]
    else:
        from featurescope.cli import main as cli
        from featurescope.runs import read_summary

        what = f"{args.base} -> {args.post}, SAEs {args.base_sae} / {args.post_sae}"
        rc = cli(
            [
                "stages",
                "--base",
                args.base,
                "--post",
                args.post,
                "--base-sae",
                args.base_sae,
                "--post-sae",
                args.post_sae,
                "--layer",
                str(args.layer),
                "--out",
                args.out,
                *extra,
            ]
        )
        if rc != 0:
            sys.exit(rc)
        timings = read_summary(args.out)["timings_s"]
    wall = time.time() - t0
    print(f"\nstages run: {what}, layer {args.layer}, {torch.get_num_threads()} threads")
    print("  parts (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(
        f"  whole run incl. model loading: {wall:.0f} s = {wall / 60:.1f} min; ratio to the 15-min limit: "
        f"{wall / LIMIT_S:.2f} (target < 1.00)"
    )


if __name__ == "__main__":
    main()
