"""Checks a written GGUF against the reference before it gets its final name.

1. Logits: transformers (float32 arithmetic; weights kept in the checkpoint's dtype, see
   reference_logits) on the source checkpoint vs llama.cpp on the float GGUF, on a few prompts:
   max |logit difference|, top-1 agreement, and identical tokenization.
2. Labels: for quantized outputs, the FinSent label of built-in financial sentences on the quantized
   file vs the unquantized one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConversionError

LOGIT_PROMPTS = (
    "Instruction: What is the sentiment of this news? Please choose an answer from "
    "{negative/neutral/positive}.\nNews: Apple's quarterly revenue rose 8% to $94.9 billion.\nAnswer:",
    "Tesla shares fell 12% on Tuesday after deliveries missed estimates; analysts cut targets to $180.",
    "Der DAX schloss 0,4 % höher — €1.2bn in Zuflüssen, ¥ und £ stabil.   EPS: 3.14 vs 2.90 est.",
)

LABEL_SENTENCES = (
    "Company profit soared 45% to a record, beating every analyst estimate.",
    "Shares plunged 30% after the firm disclosed an accounting fraud investigation.",
    "The board declared a regular quarterly dividend of $0.25 per share.",
    "Revenue rose slightly, in line with expectations.",
    "The bank cut 5,000 jobs as losses widened for the third straight quarter.",
    "Net sales increased to EUR 12.3 million from EUR 11.9 million a year earlier.",
    "The company filed for Chapter 11 bankruptcy protection.",
    "Operating margin improved modestly thanks to lower input costs.",
    "The retailer warned that full-year earnings would fall well short of guidance.",
    "The merger was completed on schedule, the company said.",
    "Moody's upgraded the issuer to A1, citing strong cash generation.",
    "Quarterly loss narrowed to $2 million from $10 million.",
    "The CEO resigned unexpectedly amid a regulatory probe; the stock slid 9%.",
    "Orders were flat compared with the previous quarter.",
    "The airline raised its full-year outlook after record summer demand.",
    "Analysts downgraded the stock to sell on weakening margins.",
    "The company will hold its annual general meeting on 14 May.",
    "Copper prices edged higher as inventories declined.",
    "The lender reported a surge in bad loans and suspended its dividend.",
    "Subscriber growth accelerated, sending the shares up 15% in late trading.",
)


@dataclass(frozen=True)
class LogitReport:
    max_abs_diff: float
    logit_scale: float
    top1_agreement: float
    tokenization_matches: bool
    positions: int
    finite: bool = True  # False when either side produced NaN or infinite logits


def reference_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


VOCAB_CHUNK_ROWS = 16_384  # output-layer rows upcast at a time (16k x 2048 x 4 bytes = 128 MB)


def reference_logits(source_dir: Path, prompts) -> tuple[list[list[int]], list[np.ndarray]]:
    """transformers' float32 logits for each prompt, with the weights kept in the checkpoint's own dtype.

    Upcasting fp16/bf16 to float32 is exact, so computing every layer in float32 from weights upcast
    just for its forward gives the float32 model's numbers, while only one layer (and one slice of the
    output layer) is ever held in float32: the reference takes about the checkpoint's size in memory
    (1.8 GB for Llama-FinSent-S) instead of twice that."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own progress output is enough
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    model = AutoModelForCausalLM.from_pretrained(source_dir, dtype="auto")  # memory-mapped, not copied
    model.eval()
    base = model.model
    base.embed_tokens.register_forward_hook(lambda module, args, out: out.float())  # rows looked up, then upcast
    for layer in base.layers:
        _float32_while_running(layer)
    base.norm.float()
    base.rotary_emb.float()
    ids_per_prompt, logits_per_prompt = [], []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer(prompt)["input_ids"]
            hidden = base(torch.tensor([ids])).last_hidden_state[0].float()
            weight = model.lm_head.weight
            logits = torch.cat([hidden @ weight[start:start + VOCAB_CHUNK_ROWS].float().T
                                for start in range(0, weight.shape[0], VOCAB_CHUNK_ROWS)], dim=-1)
            ids_per_prompt.append(ids)
            logits_per_prompt.append(logits.numpy())
    del model, base
    return ids_per_prompt, logits_per_prompt


def _float32_while_running(module) -> None:
    """Give the module float32 copies of its weights for each forward, then its own (memory-mapped)
    weights back: one layer's float32 copy exists at a time, and nothing new stays behind."""
    own: dict = {}

    def before(mod, args):
        for name, parameter in mod.named_parameters():
            own[name] = parameter.data
            parameter.data = parameter.data.float()

    def after(mod, args, out):
        for name, parameter in mod.named_parameters():
            parameter.data = own.pop(name)

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


def compare_logits(source_dir: Path, gguf_path: Path, prompts=LOGIT_PROMPTS) -> LogitReport:
    import gc

    from finsent_local.engine.llama_runtime import ContextOptions, LlamaContext, LlamaModel

    # The reference first, then freed: the two models are never in memory together.
    hf_ids_list, expected_list = reference_logits(source_dir, prompts)
    gc.collect()
    model = LlamaModel(gguf_path)
    context = LlamaContext(model, ContextOptions(n_ctx=512, n_batch=512, kv_f32=True))
    max_diff, scale, agree, total, same_tokens, finite = 0.0, 0.0, 0, 0, True, True
    try:
        for prompt, hf_ids, expected in zip(prompts, hf_ids_list, expected_list):
            ids = model.tokenize(prompt)
            same_tokens &= ids == hf_ids
            context.clear()
            out = context.eval_sequence(hf_ids, logits_at=set(range(len(hf_ids))))
            got = np.stack([out[i] for i in range(len(hf_ids))])
            finite &= bool(np.isfinite(got).all() and np.isfinite(expected).all())
            max_diff = max(max_diff, float(np.abs(got - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
            agree += int((got.argmax(-1) == expected.argmax(-1)).sum())
            total += len(hf_ids)
    finally:
        context.close()
        model.close()
    return LogitReport(max_diff, scale, agree / total, same_tokens, total, finite)


def logit_tolerance(outtype: str) -> tuple[float, float]:
    """(max |diff| allowed relative to the logit scale, minimum top-1 agreement)."""
    if outtype == "f32":
        return 1e-3, 1.0
    return 0.05, 0.9


def check_logits(report: LogitReport, outtype: str) -> None:
    relative, min_top1 = logit_tolerance(outtype)
    if not report.finite:
        raise ConversionError(f"verification failed for {outtype}: the model produces NaN or infinite logits")
    if not report.tokenization_matches:
        raise ConversionError("verification failed: llama.cpp tokenizes the test prompts differently from the source tokenizer")
    if report.max_abs_diff > relative * max(1.0, report.logit_scale) or report.top1_agreement < min_top1:
        raise ConversionError(
            f"verification failed for {outtype}: max |logit diff| {report.max_abs_diff:.4g} "
            f"(logits up to {report.logit_scale:.3g}), top-1 agreement {report.top1_agreement:.1%}"
        )


def label_agreement(reference_gguf: Path, quantized_gguf: Path, sentences=LABEL_SENTENCES,
                    schemes=("7", "3")) -> float:
    from finsent_local.engine.classifier import ClassifierEngine, EngineOptions

    labels = []
    for path in (reference_gguf, quantized_gguf):
        engine = ClassifierEngine(path, EngineOptions(n_ctx=2048, batch_tokens=1024, max_batch_texts=8))
        try:
            labels.append([r.label for s in schemes for r in engine.classify_batch(list(sentences), s)])
        finally:
            engine.close()
    same = sum(a == b for a, b in zip(*labels))
    return same / len(labels[0])
