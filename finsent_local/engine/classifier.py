"""The classification engine: the only code that runs llama.cpp at inference time.

- Constrained label scoring: the probability of every allowed label as a continuation of the prompt,
  computed over a token trie (label_trie.py), so the answer is always a valid label.
- Prefix reuse: the instruction part of each prompt is evaluated once and kept in the KV cache on a
  sequence of its own; a text's prompt is tokenized whole and only the tokens after the longest
  common prefix with it are evaluated (pieces tokenized separately would change tokens at the seam).
- Batching: several texts go through one llama_decode as separate sequences; each text's tokens also
  carry the ids of its label-branch sequences, so branch tokens ride in the same decode.

Not thread-safe: one thread at a time (worker.py owns the engine).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import cpu_buffers, occlusion
from .label_trie import LabelTrie
from .labels import DEFAULT_PROMPT_PRESET, FINSENT_SPEC_KEY, LabelScheme, schemes_from_spec
from .llama_runtime import ContextOptions, LlamaContext, LlamaModel, LoraAdapter, ModelOptions
from .lora import check_adapter


class TextError(ValueError):
    """A problem with one text (empty, not valid Unicode, ...): reported for that item with `code`,
    the others still get labels."""

    def __init__(self, message: str, code: str = "invalid_text"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EngineOptions:
    prompt_preset: str = DEFAULT_PROMPT_PRESET
    # KV cells: the cached prefixes, one classification decode (batch_tokens) and one generation
    # (prompt + completion) at the same time, since generation steps and classification batches interleave.
    n_ctx: int = 6144
    # Tokens in one llama_decode; also the longest prompt one text may have (longer texts are cut).
    batch_tokens: int = 2048
    max_prompt_tokens: int = 1024
    max_batch_texts: int = 16
    n_threads: int = 0
    n_gpu_layers: int = 0
    # llama.cpp's extra CPU buffer types (AMX...): None picks them where they are checked to work
    # (cpu_buffers.py); True/False forces them.
    use_extra_bufts: bool | None = None
    prefix_reuse: bool = True
    kv_f32: bool = False  # F32 KV cache and no flash attention: for exact comparisons only
    lora_path: Path | None = None  # a LoRA adapter GGUF applied at load time (lora.py)
    # What the instruction asks about: "news" (the model file's prompts as they are) or "tweet" (FinGPT's
    # wording for tweets, which `finsent eval --benchmark` uses for TFNS and FiQA-SA's posts).
    instruction_subject: str = "news"


@dataclass
class Classification:
    label: str
    score: float
    probs: dict[str, float]
    truncated: bool = False
    cached: bool = False


@dataclass
class Explanation:
    """A text's classification and its units' attributions (occlusion.Attribution), in text order."""

    classification: Classification
    unit: str
    words: list[occlusion.Attribution]

    def as_dict(self) -> dict:
        out = asdict(self.classification)
        out.pop("cached", None)
        return {**out, "unit": self.unit, "words": [w.as_dict() for w in self.words]}


@dataclass
class _Prepared:
    """A text ready for a decode: its full prompt tokens and how many come from the cached prefix."""

    index: int
    tokens: list[int]
    reused: int
    truncated: bool
    seq_ids: list[int] = field(default_factory=list)  # [text seq, branch seqs...]
    source_seq: int | None = None  # the sequence its first `reused` tokens are copied from (None: the prefix's)
    keep_seq: int | None = None  # a sequence that keeps the text's KV cells after the decode (explanations)


def _log_softmax_at(logits: np.ndarray):
    top = float(logits.max())
    log_z = top + math.log(float(np.exp(logits - top, dtype=np.float64).sum()))
    return lambda token: float(logits[token]) - log_z


class ClassifierEngine:
    def __init__(self, model_path: str | Path, options: EngineOptions = EngineOptions()):
        self.options = options
        if options.lora_path is not None:  # from the files' headers, before loading anything
            check_adapter(Path(model_path), Path(options.lora_path))
        self.cpu_buffers = cpu_buffers.decide(options.use_extra_bufts, model_path, options.n_gpu_layers)
        self.model = LlamaModel(
            model_path, ModelOptions(n_gpu_layers=options.n_gpu_layers, use_extra_bufts=self.cpu_buffers.use)
        )
        self.schemes, self.prompt_version = schemes_from_spec(self.model.meta(FINSENT_SPEC_KEY))
        self.schemes = {name: s.instruction_about(options.instruction_subject) for name, s in self.schemes.items()}
        if options.prompt_preset not in next(iter(self.schemes.values())).templates:
            raise ValueError(f"unknown prompt preset {options.prompt_preset!r}")
        self.tries = {name: LabelTrie(self._label_tokens(s)) for name, s in self.schemes.items()}

        # Sequence ids: one per scheme prefix, one for generation, one holding the text being explained,
        # then per-text sequences.
        self._prefix_seq = {name: i for i, name in enumerate(self.schemes)}
        self.generation_seq = len(self.schemes)
        self._explained_seq = self.generation_seq + 1
        self._first_text_seq = self._explained_seq + 1
        max_branches = max(t.n_branches for t in self.tries.values())
        n_seq_max = self._first_text_seq + options.max_batch_texts * (1 + max_branches)
        self.context = LlamaContext(
            self.model,
            ContextOptions(n_ctx=options.n_ctx, n_batch=options.batch_tokens, n_seq_max=n_seq_max,
                           n_threads=options.n_threads, kv_f32=options.kv_f32),
        )
        if options.lora_path is not None:  # before the prefixes are computed: they pass through it too
            self.context.use_adapters([LoraAdapter(self.model, options.lora_path)])
        self._prefix_tokens: dict[str, list[int]] = {}
        if options.prefix_reuse:
            for name in self.schemes:
                self._load_prefix(name)

    # -- set-up -------------------------------------------------------------------------------
    def _label_tokens(self, scheme: LabelScheme) -> list[list[int]]:
        sample = scheme.prompt("Shares were unchanged.", self.options.prompt_preset)
        prompt_tokens = self.model.tokenize(sample)
        out = []
        for label in scheme.labels:
            continuation = self.model.tokenize(LabelScheme.continuation(label), add_special=False)
            # The label must tokenize the same way after "Answer:" as on its own.
            joined = self.model.tokenize(sample + LabelScheme.continuation(label))
            if joined != prompt_tokens + continuation:
                raise ValueError(f"label {label!r} does not tokenize cleanly after the prompt")
            out.append(continuation)
        return out

    def _load_prefix(self, scheme: str) -> None:
        prefix_text = self.schemes[scheme].prompt_prefix(self.options.prompt_preset)
        # Drop the last token: it may merge with the text's first characters in the full prompt.
        tokens = self.model.tokenize(prefix_text)[:-1]
        seq = self._prefix_seq[scheme]
        self.context.remove(seq)
        self.context.eval_sequence(tokens, seq_id=seq, logits_at=set())
        self._prefix_tokens[scheme] = tokens

    @property
    def backend(self) -> str:
        return "CUDA" if self.options.n_gpu_layers != 0 and _gpu_available() else "CPU"

    def close(self) -> None:
        self.context.close()
        self.model.close()

    # -- classification -----------------------------------------------------------------------
    def prompt_tokens(self, text: str, scheme: str) -> tuple[list[int], bool]:
        """The prompt for `text`, cut so that it fits max_prompt_tokens; (tokens, truncated)."""
        scheme_obj = self.schemes[scheme]
        tokens = self.model.tokenize(scheme_obj.prompt(text, self.options.prompt_preset))
        limit = self.options.max_prompt_tokens
        truncated = False
        while len(tokens) > limit:
            truncated = True
            text_tokens = self.model.tokenize(text, add_special=False)
            keep = max(1, len(text_tokens) - (len(tokens) - limit) - 2)
            piece = b"".join(self.model.token_bytes(t) for t in text_tokens[:keep])
            text = piece.decode("utf-8", errors="ignore")
            tokens = self.model.tokenize(scheme_obj.prompt(text, self.options.prompt_preset))
        return tokens, truncated

    def _prepare(self, index: int, text: str, scheme: str) -> _Prepared:
        if not isinstance(text, str) or not text.strip():
            raise TextError("text is empty", code="empty_text")
        if not is_valid_unicode(text):
            raise TextError("text is not valid Unicode (it contains a lone surrogate)")
        tokens, truncated = self.prompt_tokens(text, scheme)
        reused = 0
        if self.options.prefix_reuse:
            prefix = self._prefix_tokens[scheme]
            limit = min(len(prefix), len(tokens) - 1)  # at least one token must be evaluated
            while reused < limit and tokens[reused] == prefix[reused]:
                reused += 1
        return _Prepared(index, tokens, reused, truncated)

    def classify_batch(self, texts: list[str], scheme: str,
                       on_batch: Callable[[int], None] | None = None) -> list[Classification | TextError]:
        """Labels for `texts` under `scheme` ("7" or "3"), in order; a TextError for a bad item.
        on_batch(n) is called with the number of texts in each llama_decode (for metrics)."""
        if scheme not in self.schemes:
            raise ValueError(f"unknown scheme {scheme!r}")
        results: list[Classification | TextError | None] = [None] * len(texts)
        pending: list[_Prepared] = []
        for i, text in enumerate(texts):
            try:
                pending.append(self._prepare(i, text, scheme))
            except TextError as e:
                results[i] = e
        for group in self._group(pending, scheme):
            if on_batch is not None:
                on_batch(len(group))
            for prepared, result in zip(group, self._score_group(group, scheme)):
                results[prepared.index] = result
        return results  # type: ignore[return-value]

    def _group(self, pending: list[_Prepared], scheme: str, budget: int | None = None) -> Iterator[list[_Prepared]]:
        """Texts per decode: at most max_batch_texts, at most `budget` (batch_tokens) new tokens."""
        branches = self.tries[scheme].n_branches
        budget = self.options.batch_tokens if budget is None else budget
        group: list[_Prepared] = []
        used = 0
        for item in pending:
            cost = len(item.tokens) - item.reused + branches
            if group and (len(group) == self.options.max_batch_texts or used + cost > budget):
                yield group
                group, used = [], 0
            group.append(item)
            used += cost
        if group:
            yield group

    def _score_group(self, group: list[_Prepared], scheme: str) -> list[Classification]:
        trie = self.tries[scheme]
        branch_tokens = trie.branch_tokens()
        seqs_per_text = 1 + trie.n_branches
        entries: list[tuple[int, int, tuple[int, ...], bool]] = []
        root_entry: list[int] = []
        branch_entry: list[list[int]] = []
        for slot, item in enumerate(group):
            first = self._first_text_seq + slot * seqs_per_text
            item.seq_ids = list(range(first, first + seqs_per_text))
            if item.keep_seq is not None:
                item.seq_ids[0] = item.keep_seq
            source = self._prefix_seq[scheme] if item.source_seq is None else item.source_seq
            if item.reused:
                for seq in item.seq_ids:
                    self.context.copy_sequence(source, seq, 0, item.reused)
            n = len(item.tokens)
            for pos in range(item.reused, n):
                entries.append((item.tokens[pos], pos, tuple(item.seq_ids), pos == n - 1))
            root_entry.append(len(entries) - 1)
            mine = []
            for token, depth, below in branch_tokens:
                mine.append(len(entries))
                entries.append((token, n + depth - 1, tuple(item.seq_ids[1 + b] for b in below), True))
            branch_entry.append(mine)
        try:
            logits = self.context.decode(entries)
        finally:
            for item in group:
                for seq in item.seq_ids:
                    if seq != item.keep_seq:
                        self.context.remove(seq)
        scheme_obj = self.schemes[scheme]
        out = []
        for slot, item in enumerate(group):
            root = _log_softmax_at(logits[root_entry[slot]])
            branches = [_log_softmax_at(logits[e]) for e in branch_entry[slot]]
            out.append(self._result(scheme_obj, trie.label_logprobs(root, branches), item.truncated))
        return out

    @staticmethod
    def _result(scheme: LabelScheme, logprobs: list[float], truncated: bool) -> Classification:
        top = max(logprobs)
        weights = [math.exp(lp - top) for lp in logprobs]
        total = sum(weights)
        probs = [w / total for w in weights]
        best = max(range(len(probs)), key=probs.__getitem__)
        score = sum(p * v for p, v in zip(probs, scheme.values))
        return Classification(
            label=scheme.labels[best],
            score=round(score, 6),
            probs={label: round(p, 6) for label, p in zip(scheme.labels, probs)},
            truncated=truncated,
        )

    # -- explanations (occlusion.py) -------------------------------------------------------------
    def explain(self, text: str, scheme: str, unit: str = "word",
                on_batch: Callable[[int], None] | None = None) -> Explanation:
        """The label of `text` and, for each unit (word or pair of words), the answer without it.

        The cost is the tokens that differ: the text's prompt is decoded once (after the cached
        instruction prefix) onto a sequence that keeps it; each variant copies the KV cells of the
        prompt up to its first changed token from there, and only its own tail and label branches are
        decoded, many variants per llama_decode. Raises TextError for a text that cannot be classified."""
        if scheme not in self.schemes:
            raise ValueError(f"unknown scheme {scheme!r}")
        original = self._prepare(0, text, scheme)
        unit_list = occlusion.units(text, unit)
        keep = self._explained_seq
        original.keep_seq = keep
        self.context.remove(keep)
        try:
            if on_batch is not None:
                on_batch(1)
            result = self._score_group([original], scheme)[0]
            full = original.tokens
            variants = []
            for i, piece in enumerate(unit_list):
                tokens, truncated = self.prompt_tokens(occlusion.without(text, piece), scheme)
                shared = 0
                limit = min(len(full), len(tokens) - 1)  # at least one token of its own is evaluated
                while shared < limit and tokens[shared] == full[shared]:
                    shared += 1
                variants.append(_Prepared(i, tokens, shared, truncated, source_seq=keep))
            scored: list[Classification | None] = [None] * len(variants)
            # Budget: the kept prompt's cells stay in use beside each decode.
            for group in self._group(variants, scheme, self.options.batch_tokens - (len(full) - original.reused)):
                if on_batch is not None:
                    on_batch(len(group))
                for item, outcome in zip(group, self._score_group(group, scheme)):
                    scored[item.index] = outcome
        finally:
            self.context.remove(keep)
        words = occlusion.attribute(result.label, result.score, result.probs, unit_list, scored)
        return Explanation(result, unit, words)

    # -- free generation (the raw model over the OpenAI API) ------------------------------------
    @property
    def generation_room(self) -> int:
        """KV cells a generation (prompt + completion) may use beside the prefixes and one
        classification decode."""
        prefixes = sum(len(t) for t in self._prefix_tokens.values())
        return self.options.n_ctx - prefixes - self.options.batch_tokens - 8

    def generation_prompt(self, tokens: list[int], max_tokens: int) -> list[int]:
        """The prompt tokens a generation of max_tokens evaluates: the most recent ones that fit."""
        return tokens[-max(1, self.generation_room - max_tokens):]

    def generation_steps(self, tokens: list[int], max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                         seed: int | None = None) -> Iterator[bytes | None]:
        """One llama_decode per step: None while the prompt is evaluated (in chunks of at most
        GENERATION_CHUNK tokens), then the bytes of each generated token until an end-of-generation
        token or max_tokens. Closing the iterator frees the generation's KV cells."""
        seq = self.generation_seq
        tokens = self.generation_prompt(tokens, max_tokens)
        rng = np.random.default_rng(seed)
        try:
            for start in range(0, len(tokens), GENERATION_CHUNK):
                chunk = tokens[start : start + GENERATION_CHUNK]
                last = start + len(chunk) == len(tokens)
                found = self.context.eval_sequence(chunk, seq_id=seq, start_pos=start,
                                                   logits_at={len(chunk) - 1} if last else set())
                if not last:
                    yield None
            logits = found[len(chunk) - 1]
            pos = len(tokens)
            for _ in range(max_tokens):
                token = _sample(logits, temperature, top_p, rng)
                if self.model.is_end_of_generation(token):
                    return
                yield self.model.token_bytes(token)
                logits = self.context.decode([(token, pos, (seq,), True)])[0]
                pos += 1
        finally:
            self.context.remove(seq)

    def generate(self, prompt: str, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None) -> Iterator[bytes]:
        """The generated bytes for a plain-text prompt (no special tokens parsed), token by token."""
        steps = self.generation_steps(self.model.tokenize(prompt), max_tokens, temperature, top_p, seed)
        return (piece for piece in steps if piece is not None)


GENERATION_CHUNK = 256  # prompt tokens per decode, so classification batches can run in between


def is_valid_unicode(text: str) -> bool:
    """False for strings that cannot be UTF-8 (lone surrogates, which JSON's \\ud800 escapes allow)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    if temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs)
        keep = np.searchsorted(np.cumsum(probs[order]), top_p) + 1
        kept = order[:keep]
        return int(rng.choice(kept, p=probs[kept] / probs[kept].sum()))
    return int(rng.choice(len(probs), p=probs))


def _gpu_available() -> bool:
    from .llama_runtime import gpu_offload_supported

    return gpu_offload_supported()
