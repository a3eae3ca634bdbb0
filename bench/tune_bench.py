"""Benchmark: what LoRA fine-tuning costs on CPU, for `finsent tune` (issue 21), in one run.

A random model of Llama-FinSent-S's exact shape (hidden 2048, MLP 4916, 16 layers, GQA 32/8, vocab
128,256; float32 in torch, as training on a CPU without bf16 units runs) gets PEFT LoRA adapters (rank
16, alpha 32, on every attention and MLP projection). Measured on batches of 8 prompts of 48 tokens (a
headline in the card's prompt layout is 40-60 tokens):
- baseline: a forward pass without gradients (what inference in torch costs), tokens/s;
- a LoRA training step (forward, backward through the frozen base, AdamW on the adapters), tokens/s;
- the process's peak RSS.
The ratio training/forward is what carries over to other CPUs; the README turns tokens/s into time
for 1,000 and 10,000 labelled rows.

.venv/bin/python bench/tune_bench.py      (pip install peft first; BENCH_TUNE_STEPS to change the steps)
"""

from __future__ import annotations

import os
import resource
import time

import torch

STEPS = int(os.environ.get("BENCH_TUNE_STEPS", 3))
BATCH, TOKENS = 8, 48


def main() -> int:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=2048, intermediate_size=4916, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True,
                         max_position_embeddings=2048, rope_scaling={"rope_type": "llama3", "factor": 32.0,
                                                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                    "original_max_position_embeddings": 8192})
    started = time.perf_counter()
    model = LlamaForCausalLM(config)
    built = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    batch = torch.randint(0, config.vocab_size, (BATCH, TOKENS))
    labels = batch.clone()
    labels[:, : TOKENS - 4] = -100  # the loss falls on the answer tokens only, as finsent tune does

    model.eval()
    with torch.no_grad():
        model(batch)  # warm-up
        started = time.perf_counter()
        for _ in range(STEPS):
            model(batch)
        forward_s = (time.perf_counter() - started) / STEPS

    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                            "up_proj", "down_proj"]))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=2e-4)
    lora.train()

    def step() -> float:
        optimizer.zero_grad()
        loss = lora(input_ids=batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(STEPS):
        step()
    train_s = (time.perf_counter() - started) / STEPS
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    tokens = BATCH * TOKENS
    print(f"model: {params / 1e6:.0f}M parameters (built in {built:.0f} s), LoRA r=16: {trainable / 1e6:.1f}M trainable; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| pass | s per batch of 8 x 48 tokens | tokens/s | vs forward |")
    print("|---|---:|---:|---:|")
    print(f"| forward, no gradients (baseline) | {forward_s:.2f} | {tokens / forward_s:.0f} | 1.00 |")
    print(f"| LoRA training step | {train_s:.2f} | {tokens / train_s:.0f} | {train_s / forward_s:.2f} |")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    for rows in (1_000, 10_000):
        minutes = rows * TOKENS * 3 / (tokens / train_s) / 60  # 3 epochs
        print(f"{rows:,} labelled rows x 3 epochs: about {minutes:,.0f} minutes at this speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
