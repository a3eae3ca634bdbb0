"""Benchmark: what `finsent tune` costs on this machine's CPU, in one run.

A random model of Llama-FinSent-S's exact shape (hidden 2048, MLP 4916, 16 layers, GQA 32/8, vocab
128,256; float32 in torch, as `finsent tune` trains on a CPU) gets the command's default LoRA adapters
(TrainingSettings: rank 16, alpha 32, every attention and MLP projection). Batches of 8 prompts of 48
tokens (a headline in the card's prompt layout is 40-60 tokens; 8 x 48 fits the default 512-token
budget), the last 2 tokens of each the answer. Measured, with the project's own code:
- baseline: a plain forward pass without gradients over every position (inference in torch), tokens/s;
- `finsent tune`'s training step (tuning/training.training_step: the output layer at the answer positions
  only, backward through the frozen base, AdamW on the adapters), tokens/s and the ratio to the baseline;
- its validation pass (tuning/training.validate), tokens/s;
- the training step with the keep term (issue 33: as many reference texts as the step has rows, their label
  distribution pulled towards the base's, tuning/training.keep_loss), against the plain step; and the
  base's distributions on the reference texts, computed once before training (tuning/training.
  base_distributions), per text;
- the process's peak RSS.
Then what a whole run costs: 1,000 and 10,000 labelled rows, 80% trained for 3 epochs, 20% validated 4
times (before training and after each epoch), at these speeds.

.venv/bin/python bench/tune_bench.py      (BENCH_TUNE_STEPS to change the steps; needs the [tune] extra;
--smoke: a model of the tests' tiny shape, one step of small batches; bench/smoke_mode.py)
"""

from __future__ import annotations

import os
import resource
import time

import torch

from smoke_mode import pick

STEPS = int(os.environ.get("BENCH_TUNE_STEPS", pick(3, 1)))
BATCH, TOKENS, ANSWER = pick(8, 2), pick(48, 16), 2
# Llama-FinSent-S's shape (in a smoke run: the tests' tiny one, tests/fixture_models.py)
SHAPE = pick(dict(hidden_size=2048, intermediate_size=4916, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256),
             dict(hidden_size=64, intermediate_size=200, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=1024))


def main() -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    from finsent_local.tuning.examples import IGNORED, Example
    from finsent_local.tuning.training import (KeepSet, TrainingSettings, add_lora, base_distributions, keep_loss,
                                               new_optimizer, training_step, validate)

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE, tie_word_embeddings=True,
                         max_position_embeddings=131072, rope_scaling={"rope_type": "llama3", "factor": 32.0,
                                                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                    "original_max_position_embeddings": 8192})
    started = time.perf_counter()
    model = LlamaForCausalLM(config)
    built = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, config.vocab_size, (BATCH, TOKENS))
    batch = [Example(row.tolist(), [IGNORED] * (TOKENS - ANSWER) + row[-ANSWER:].tolist()) for row in ids]

    model.eval()
    with torch.no_grad():
        model(ids)  # warm-up
        started = time.perf_counter()
        for _ in range(STEPS):
            model(ids)
        forward_s = (time.perf_counter() - started) / STEPS

    settings = TrainingSettings()
    lora = add_lora(model, settings)
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    optimizer = new_optimizer(lora, settings)
    lora.train()
    training_step(lora, batch, optimizer, "cpu")  # warm-up
    started = time.perf_counter()
    for _ in range(STEPS):
        training_step(lora, batch, optimizer, "cpu")
    train_s = (time.perf_counter() - started) / STEPS

    # the keep term: reference prompts as long as the desk's, the 7 labels' answers shaped as Llama 3 writes them
    # (" strong"/" moderately"/" mildly" + " negative"/" positive", and " neutral")
    import tempfile
    from pathlib import Path

    a, b, c, d, neg, pos = torch.randint(0, config.vocab_size, (6,)).tolist()
    answers = [[a, neg], [b, neg], [c, neg], [d], [c, pos], [b, pos], [a, pos]]
    prompts = [row.tolist() for row in torch.randint(0, config.vocab_size, (BATCH * 4, TOKENS - ANSWER))]
    with tempfile.TemporaryDirectory() as tmp:
        keep = KeepSet(prompts, answers, Path(tmp) / "targets.pt")
        started = time.perf_counter()
        targets = base_distributions(lora, keep, "cpu")
        targets_s = (time.perf_counter() - started) / len(prompts)
    lora.train()
    indices = list(range(BATCH))

    def keep_term():
        return settings.keep_weight * keep_loss(lora, keep, indices, targets, "cpu")

    training_step(lora, batch, optimizer, "cpu", keep_term)  # warm-up
    started = time.perf_counter()
    for _ in range(STEPS):
        training_step(lora, batch, optimizer, "cpu", keep_term)
    keep_s = (time.perf_counter() - started) / STEPS

    validate(lora, batch, settings.batch_tokens, "cpu")  # warm-up
    started = time.perf_counter()
    for _ in range(STEPS):
        validate(lora, batch, settings.batch_tokens, "cpu")
    validate_s = (time.perf_counter() - started) / STEPS
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    tokens = BATCH * TOKENS
    print(f"model: {params / 1e6:.0f}M parameters (built in {built:.0f} s), LoRA r={settings.rank}: "
          f"{trainable / 1e6:.1f}M trainable; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"| pass | s per batch of {BATCH} x {TOKENS} tokens | tokens/s | time vs forward |")
    print("|---|---:|---:|---:|")
    print(f"| forward, no gradients, every position (baseline) | {forward_s:.2f} | {tokens / forward_s:.0f} | 1.00 |")
    print(f"| finsent tune's training step | {train_s:.2f} | {tokens / train_s:.0f} | {train_s / forward_s:.2f} |")
    print(f"| finsent tune's validation pass | {validate_s:.2f} | {tokens / validate_s:.0f} | "
          f"{validate_s / forward_s:.2f} |")
    print(f"| training step with the keep term ({BATCH} reference texts) | {keep_s:.2f} | {tokens / keep_s:.0f} | "
          f"{keep_s / forward_s:.2f} |")
    print(f"keep term: the step takes {keep_s / train_s:.2f}x the plain step; the base's distributions, once before "
          f"training: {targets_s:.2f} s per reference text")
    print(f"peak RSS: {peak_mb:,.0f} MB")
    for rows in (1_000, 10_000):
        train_tokens = rows * 0.8 * TOKENS * settings.epochs
        validation_tokens = rows * 0.2 * TOKENS * (settings.epochs + 1)
        seconds = train_tokens / (tokens / train_s) + validation_tokens / (tokens / validate_s)
        kept = train_tokens / (tokens / keep_s) + validation_tokens / (tokens / validate_s) + 240 * targets_s
        print(f"{rows:,} labelled rows ({settings.epochs} epochs, 20% validation): about {seconds / 60:,.0f} "
              f"minutes of training and validation at these speeds; {kept / 60:,.0f} with the default reference "
              f"(240 of its 400 texts kept)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
