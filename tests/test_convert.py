"""The converter against the reference implementation (transformers) on tiny checkpoints built here."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

import fixture_models
from conftest import convert_cached
from finsent_local.convert.checkpoint import Checkpoint
from finsent_local.convert.gguf_output import Provenance, write_float_gguf
from finsent_local.convert.llama_layout import llama3_rope_factors, plan_tensors
from finsent_local.convert.manifest import manifest_path
from finsent_local.files import sha256_of
from finsent_local.convert.outtypes import OUT_TYPES
from finsent_local.convert.verify import compare_logits
from finsent_local.convert.vocab import read_vocab
from finsent_local.engine.labels import FINSENT_SPEC_KEY, schemes_from_spec
from finsent_local.engine.llama_runtime import ContextOptions, LlamaContext, LlamaModel


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_logits_match_transformers(tiny_checkpoint, outtype):
    gguf_path = convert_cached(tiny_checkpoint, outtype)
    report = compare_logits(tiny_checkpoint, gguf_path)
    assert report.tokenization_matches
    if outtype == "f32":
        # F32 weights, F32 KV cache: only float summation order differs.
        assert report.max_abs_diff < 1e-4 * report.logit_scale
        assert report.top1_agreement == 1.0
    else:
        # F16 weights (and activations rounded to F16 in llama.cpp's matmuls).
        assert report.max_abs_diff < 0.01 * report.logit_scale
        assert report.top1_agreement >= 0.97


def _reader(path: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)


def _field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def test_low_memory_reference_is_the_float32_model(tiny_checkpoint):
    """The verification's reference keeps the weights in the checkpoint's dtype and upcasts one layer at
    a time: upcasting is exact, so its logits must be the float32 model's. They are bit for bit on the
    AMD machines; the output layer is computed in vocabulary slices, and a BLAS may pick another kernel
    (another order of float32 sums) for another matrix shape, so 1e-5 of the logit scale is allowed:
    a hundred times tighter than the f32 verification tolerance (1e-3), so it would still catch any
    real difference such as a weight left in fp16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finsent_local.convert.verify import LOGIT_PROMPTS, reference_logits

    ids, logits = reference_logits(tiny_checkpoint, LOGIT_PROMPTS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    float32 = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32).eval()
    for prompt, prompt_ids, got in zip(LOGIT_PROMPTS, ids, logits):
        assert prompt_ids == tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            expected = float32(torch.tensor([prompt_ids])).logits[0].numpy()
        assert got.dtype == np.float32 and got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_gguf_metadata_is_complete(tiny_checkpoint, tiny_variant):
    path = convert_cached(tiny_checkpoint, "f16")
    reader = _reader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.name") == tiny_checkpoint.name
    assert _field(reader, "llama.feed_forward_length") == tiny_variant.intermediate
    assert _field(reader, "llama.attention.head_count_kv") == tiny_variant.kv_heads
    assert _field(reader, "llama.rope.freq_base") == 500000.0
    assert _field(reader, "tokenizer.ggml.pre") == "llama-bpe"
    assert _field(reader, "tokenizer.ggml.bos_token_id") == 128000
    assert _field(reader, "tokenizer.ggml.eos_token_id") == 128001
    assert _field(reader, "tokenizer.ggml.eot_token_id") == 128009
    assert _field(reader, "tokenizer.ggml.add_bos_token") is True
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 128256
    assert len(reader.fields["tokenizer.ggml.merges"].data) > 200_000
    # Tied checkpoints have no output tensor: llama.cpp reuses token_embd.
    assert ("output.weight" in tensors) == (not tiny_variant.tied)
    # Llama 3 rope scaling is carried by the rope_freqs tensor.
    config = Checkpoint(tiny_checkpoint).config
    np.testing.assert_allclose(np.asarray(tensors["rope_freqs.weight"].data), llama3_rope_factors(config))
    schemes, version = schemes_from_spec(_field(reader, FINSENT_SPEC_KEY))
    assert schemes["7"].labels[0] == "strong negative" and schemes["3"].labels == ("negative", "neutral", "positive")
    assert version >= 1


def test_rope_factors_follow_llama3_bands():
    config = Checkpoint(fixture_models.tiny_checkpoint(fixture_models.TINY_VARIANTS[0])).config
    factors = llama3_rope_factors(config)
    assert factors[0] == 1.0  # highest frequency: unscaled
    assert factors[-1] == 32.0  # lowest frequency: divided by `factor`
    assert np.all(np.diff(factors) >= 0)


CORPUS = [
    "Apple's Q3 revenue rose 8.2% YoY to $94.93bn; EPS $1.40 vs. $1.35 est.",
    "Tesla shares fell 12% on Tuesday after deliveries missed estimates.",
    "1234567890 12,345,678.90 -0.5% +3.25bps 1e-3 2024-06-30 10:45am",
    "€1.2bn, £300m, ¥15,000, ₹2 lakh crore, CHF 0.91, ₿0.5",
    "Der DAX schloss 0,4 % höher; 日经指数下跌2%; Индекс РТС вырос; مؤشر السوق",
    "Emoji 📈📉 and ✓ marks — en–dash, “quotes”, ‘single’, ellipsis…",
    "   leading spaces, trailing spaces   ",
    "tabs\tand\t\tmore\ttabs",
    "newlines\n\nand\r\nCRLF\n   indented",
    "multiple     spaces      between",
    "don't won't it's we'll they're I'M SHOUTING's",
    "News: {braces} [brackets] (parens) <angle> | pipes / slashes \\ backslash",
    "Answer: strong positive\nAnswer:",
    "a",
    " ",
    "\n",
    "",
    " Hello World!",
    "w048 7tuijk dsdfhu",
    "нещо на Български",
    "ដើម្បីធ្វើការ",
    "🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ (own token)",
    "3 33 333 3333 33333 333333 3333333",
    "   Hello\n    Hello\n\n\n\t\tend",
    "'s 've 'RE 'Ll",
]


def test_tokenization_matches_hugging_face(tokenizer_dir, tied_f16_checkpoint):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = LlamaModel(convert_cached(tied_f16_checkpoint, "f16"))
    try:
        for text in CORPUS:
            assert model.tokenize(text) == hf(text)["input_ids"], repr(text)
            assert model.tokenize(text, add_special=False) == hf(text, add_special_tokens=False)["input_ids"]
    finally:
        model.close()


def _logits(path: Path, tokens: list[int]) -> np.ndarray:
    model = LlamaModel(path)
    ctx = LlamaContext(model, ContextOptions(n_ctx=256, n_batch=256, kv_f32=True))
    try:
        out = ctx.eval_sequence(tokens, logits_at=set(range(len(tokens))))
        return np.stack([out[i] for i in range(len(tokens))])
    finally:
        ctx.close()
        model.close()


def test_ffn_padding_changes_no_logit(tmp_path):
    """Zero rows in gate/up and zero columns in down: the function is exactly the same."""
    variant = fixture_models.TINY_VARIANTS[1]  # untied, f32
    checkpoint = Checkpoint(fixture_models.tiny_checkpoint(variant))
    vocab = read_vocab(checkpoint.model_dir, checkpoint.config)
    paths = {}
    for width in (variant.intermediate, 256):
        paths[width] = tmp_path / f"w{width}.gguf"
        plans = plan_tensors(checkpoint.config, True, width)
        write_float_gguf(paths[width], checkpoint, vocab, plans, OUT_TYPES["f32"], width, Provenance("t", None, None, None))
    padded_reader = _reader(paths[256])
    assert _field(padded_reader, "llama.feed_forward_length") == 256
    down = next(t for t in padded_reader.tensors if t.name == "blk.0.ffn_down.weight")
    assert list(down.shape) == [256, variant.hidden]  # GGUF lists ne0 (columns) first
    tokens = [128000, 9906, 1917, 11, 279, 3157, 16392, 220, 18, 13, 20, 4, 13]
    unpadded, padded = _logits(paths[variant.intermediate], tokens), _logits(paths[256], tokens)
    assert np.abs(unpadded - padded).max() < 1e-5


def test_padding_makes_every_ffn_down_block_quantized(trained_gguf, trained_checkpoint):
    """Without padding the MLP width (600) fits no quantizer block: ffn_down would stay F16."""
    padded = {t.name: t.tensor_type for t in _reader(trained_gguf["q4_k_m"]).tensors}
    unpadded = {t.name: t.tensor_type for t in _reader(convert_cached(trained_checkpoint, "q4_k_m", pad_ffn=False)).tensors}
    downs = [n for n in padded if "ffn_down" in n]
    assert downs
    block_types = {gguf.GGMLQuantizationType.Q4_K, gguf.GGMLQuantizationType.Q6_K}
    assert all(padded[n] in block_types for n in downs)
    assert all(unpadded[n] not in block_types for n in downs)
    assert trained_gguf["q4_k_m"].stat().st_size < convert_cached(trained_checkpoint, "q4_k_m", pad_ffn=False).stat().st_size


def test_quantized_files_classify_like_unquantized(trained_gguf):
    from finsent_local.engine.classifier import ClassifierEngine
    from sentiment_data import held_out_examples

    texts = [text for text, _ in held_out_examples(per_label=6)]
    labels = {}
    for outtype, path in trained_gguf.items():
        engine = ClassifierEngine(path)
        try:
            labels[outtype] = [r.label for scheme in ("7", "3") for r in engine.classify_batch(texts, scheme)]
        finally:
            engine.close()
    for outtype in ("q8_0", "q4_k_m"):
        same = sum(a == b for a, b in zip(labels[outtype], labels["f16"])) / len(labels["f16"])
        assert same >= 0.95, outtype


def test_manifest_records_the_file(trained_gguf):
    path = trained_gguf["q4_k_m"]
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["sha256"] == sha256_of(path)
    assert manifest["size_bytes"] == path.stat().st_size
    assert manifest["outtype"] == "q4_k_m"
    assert manifest["ffn_width"] == 768 and manifest["ffn_width_original"] == 600
    assert manifest["verification"]["label_agreement"] >= 0.95
    assert manifest["verification"]["top1_agreement"] >= 0.97


@pytest.mark.parametrize("outtype", ["bf16", "q6_k", "q5_k_m", "q4_0"])
def test_other_output_types_classify_like_f16(trained_checkpoint, trained_gguf, outtype):
    from finsent_local.engine.classifier import ClassifierEngine
    from sentiment_data import held_out_examples

    path = convert_cached(trained_checkpoint, outtype)
    expected_types = {"bf16": gguf.GGMLQuantizationType.BF16, "q6_k": gguf.GGMLQuantizationType.Q6_K,
                      "q5_k_m": gguf.GGMLQuantizationType.Q5_K, "q4_0": gguf.GGMLQuantizationType.Q4_0}
    types = {t.name: t.tensor_type for t in _reader(path).tensors}
    assert types["blk.0.ffn_gate.weight"] == expected_types[outtype]
    texts = [text for text, _ in held_out_examples(per_label=3)]
    labels = {}
    for name, file in (("f16", trained_gguf["f16"]), (outtype, path)):
        engine = ClassifierEngine(file)
        try:
            labels[name] = [r.label for r in engine.classify_batch(texts, "7")]
        finally:
            engine.close()
    assert sum(a == b for a, b in zip(labels[outtype], labels["f16"])) / len(texts) >= 0.9


def test_chat_template_is_carried(tmp_path, tied_f16_checkpoint):
    import shutil

    from finsent_local.convert.pipeline import ConvertRequest, convert

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tied_f16_checkpoint, ckpt)
    config = json.loads((ckpt / "tokenizer_config.json").read_text())
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    config["chat_template"] = template
    (ckpt / "tokenizer_config.json").write_text(json.dumps(config))
    convert(ConvertRequest(source=str(ckpt), outtypes=["f16"], outfile=str(tmp_path / "m.gguf"), verify=False, quiet=True))
    assert _field(_reader(tmp_path / "m.gguf"), "tokenizer.chat_template") == template
