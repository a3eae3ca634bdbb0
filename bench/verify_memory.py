"""Benchmark: peak memory of `finsent convert`'s verification on a random checkpoint of
Llama-FinSent-S's shape (fp16, 1.8 GB).

Prints the peak RSS of, each in a fresh process:
  before     the previous recipe: transformers' model loaded in float32, llama.cpp's F16 file beside it
  reference  finsent's compare_logits: the reference in the checkpoint's dtype, float32 one layer at a
             time, freed before the GGUF is opened (convert/verify.py)
  convert    the whole `finsent convert --outtype q4_k_m` with verification (logits and labels)
with ratios against `before`. Target (issue 10, section 5): the verified conversion under 3 GB.

Run: .venv/bin/python bench/verify_memory.py      (--smoke: the tests' trained checkpoint, bench/smoke_mode.py)
"""

from __future__ import annotations

import sys

from convert_bench import PYTHON, _measure
from same_shape import WORK, same_shape_checkpoint

BEFORE = """
import sys, numpy as np, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from finsent_local.convert.verify import LOGIT_PROMPTS
from finsent_local.engine.llama_runtime import ContextOptions, LlamaContext, LlamaModel
source, gguf = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(source)
reference = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
model = LlamaModel(gguf)
context = LlamaContext(model, ContextOptions(n_ctx=512, n_batch=512, kv_f32=True))
worst = 0.0
for prompt in LOGIT_PROMPTS:
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits[0].numpy()
    context.clear()
    out = context.eval_sequence(ids, logits_at=set(range(len(ids))))
    worst = max(worst, float(np.abs(np.stack([out[i] for i in range(len(ids))]) - expected).max()))
print("max |diff|", worst)
"""

OURS = """
import sys
from finsent_local.convert.verify import compare_logits
print(compare_logits(sys.argv[1], sys.argv[2]))
"""


def main() -> None:
    checkpoint = same_shape_checkpoint()
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    f16 = out / "verify-f16.gguf"
    if not f16.exists():
        _measure([PYTHON, "-m", "finsent_local.cli", "convert", str(checkpoint), "--outtype", "f16", "--no-verify",
                  "--quiet", "--force", "--outfile", str(f16)])
    rows = [("before (float32 reference + F16 GGUF)", *_measure([PYTHON, "-c", BEFORE, str(checkpoint), str(f16)])),
            ("reference (compare_logits)", *_measure([PYTHON, "-c", OURS, str(checkpoint), str(f16)])),
            ("convert --outtype q4_k_m, verified", *_measure(
                [PYTHON, "-m", "finsent_local.cli", "convert", str(checkpoint), "--outtype", "q4_k_m", "--verify",
                 "--quiet", "--force", "--outfile", str(out / "verified.gguf")]))]
    base = rows[0]
    print(f"\n{'run':40} {'wall s':>8} {'peak GB':>8}   ratios vs before")
    for name, wall, peak in rows:
        print(f"{name:40} {wall:8.1f} {peak:8.2f}   time x{wall / base[1]:.2f}  rss x{peak / base[2]:.2f}")
    print(f"\ntarget: verified conversion under 3 GB: {'OK' if rows[2][2] < 3 else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
