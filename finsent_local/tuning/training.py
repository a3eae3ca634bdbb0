"""LoRA training of the base checkpoint on (prompt + answer) examples: PEFT adapters on transformers'
Llama, a plain torch loop.

Why a loop of its own rather than transformers' Trainer: the loss falls on the few answer tokens, so the
output layer (128,256 rows) is applied at those positions only, not at every prompt position, which would
be most of the memory; a stop asked by Ctrl-C lands on a step boundary, where the checkpoint (adapter,
optimizer, schedule, random state) makes a resumed run take the very steps an uninterrupted one takes;
and validation (loss and greedy-answer accuracy) decides early stopping and which adapter is kept.

The greedy-answer accuracy shown while training is computed in the validation loss's own pass: a row
counts when every answer token is the most likely one given the tokens before it, which is exactly when
greedy decoding writes the gold answer. The engine scores each label as a whole instead; `finsent eval`'s
figures on the converted files, before and after, are the ones that decide (tuning/run.py).
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .examples import IGNORED, Example

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINT_FILE = "state.pt"
CHECKPOINT_EVERY_S = 300.0  # besides every validation and every stop: what a crash can lose at most
MIN_IMPROVEMENT = 1e-4  # of validation loss (nats per answer token), to count as better


@dataclass(frozen=True)
class TrainingSettings:
    """Defaults sized for Llama-FinSent-S on a laptop CPU (bench/tune_bench.py): the LoRA recipe of the
    model card's kind (rank 16, alpha 32, every projection), a learning rate common for LoRA on 1B
    models, batches of about 8 headlines, 3 epochs with early stopping on validation loss."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    learning_rate: float = 2e-4
    epochs: int = 3
    batch_tokens: int = 512  # padded tokens per optimizer step (rows x longest row)
    warmup_share: float = 0.06  # of all steps, rising linearly to the rate; then linear decay to 0
    patience: int = 1  # stop after this many validations in a row without improvement
    validations_per_epoch: int = 1
    seed: int = 0
    # More epochs when a small file gives fewer optimizer steps than this. Measured on the tests' fixture
    # (bench/RESULTS.md, "Keeping what the model knew"): a 95-row desk file at the default rate learns its
    # house rule on 0% of the held-out headlines after 3 epochs (30 steps), 60% after 60 steps, 77% when
    # allowed 100 or more (early stopping ends it at 90); the 340-row file's 102 steps are unchanged.
    min_steps: int = 100
    # The weight of the keep term: KL(base || tuned) of the label distribution on reference texts, added to
    # the desk rows' loss (Learning without Forgetting, Li and Hoiem 2016). Chosen by measurement
    # (bench/RESULTS.md, "Keeping what the model knew").
    keep_weight: float = 1.0

    def as_dict(self) -> dict:
        values = asdict(self)
        values["target_modules"] = list(self.target_modules)
        return values


class TrainingError(RuntimeError):
    """Training cannot start or continue as asked: one line for the user."""


class TrainingStopped(Exception):
    """A stop was asked (Ctrl-C): the checkpoint holds every step done."""

    def __init__(self, step: int, total: int):
        super().__init__(f"stopped after step {step} of {total}")
        self.step, self.total = step, total


@dataclass
class StepReport:
    step: int
    total: int
    epoch: float
    loss: float | None = None  # of this step's batch
    validation: dict | None = None  # after a validation: loss, accuracy


@dataclass
class TrainingResult:
    model: object  # the PEFT model, holding the best adapter
    steps: int
    total_steps: int
    best_step: int
    stop_reason: str  # "epochs" or "early stopping"
    device: str
    history: list[dict] = field(default_factory=list)  # every validation
    seconds: float = 0.0
    epochs: int = 0  # planned: --epochs, or more to reach min_steps


def epoch_batches(examples: list[Example], batch_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches: the examples in a seeded order, packed by packed_batches. The same seed gives
    the same batches on any machine."""
    order = list(range(len(examples)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return packed_batches(order, examples, batch_tokens)


def packed_batches(order: list[int], examples: list[Example], batch_tokens: int) -> list[list[int]]:
    """The examples in this order, cut wherever the padded batch (rows times the longest row) would pass
    batch_tokens; a row longer than that alone makes a batch of one."""
    batches, current, longest = [], [], 0
    for index in order:
        length = len(examples[index].input_ids)
        if current and max(longest, length) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def _answer_logits(model, batch: list[Example], device):
    """Output-layer logits at the positions that predict answer tokens: (logits, targets, row of each)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, positions, targets = [], [], []
    for row, example in enumerate(batch):
        ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        mask[row, : len(example.input_ids)] = 1
        for position, token in enumerate(example.labels):
            if token != IGNORED:  # predicted from the position before it
                rows.append(row)
                positions.append(position - 1)
                targets.append(token)
    llama = model.get_base_model()  # the Llama with LoRA layers in place
    hidden = llama.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
    return llama.lm_head(picked).float(), torch.tensor(targets, device=device), torch.tensor(rows, device=device)


def validate(model, examples: list[Example], batch_tokens: int, device) -> dict:
    """Mean answer-token loss and greedy-answer accuracy on the validation examples."""
    import torch

    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    with torch.no_grad():
        for indices in packed_batches(list(range(len(examples))), examples, batch_tokens):
            batch = [examples[i] for i in indices]
            logits, targets, rows = _answer_logits(model, batch, device)
            loss_sum += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            tokens += len(targets)
            wrong = torch.zeros(len(batch), dtype=torch.bool, device=device)
            wrong.index_fill_(0, rows[logits.argmax(dim=-1) != targets], True)
            correct += int((~wrong).sum())
    model.train()
    return {"loss": loss_sum / max(tokens, 1), "accuracy": correct / max(len(examples), 1)}


def resolve_device(device: str) -> str:
    """'auto': CUDA when torch sees a GPU, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: torch sees no CUDA GPU here (a CPU-only torch, or no driver)")
    if device not in ("cpu", "cuda"):
        raise TrainingError(f"--device must be auto, cpu or cuda, not {device!r}")
    return device


def _load_lora_model(base_dir: Path, settings: TrainingSettings, device: str):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # the command shows its own progress, not the library's
    transformers_logging.disable_progress_bar()
    torch.manual_seed(settings.seed)  # the adapters' initial weights
    # float32: CPUs without bf16 units train fastest in it, and the merged weights are rounded once, at the end
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return add_lora(base, settings).to(device)


def add_lora(base, settings: TrainingSettings):
    """PEFT LoRA adapters on the base model's projections (the base's own weights frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), task_type="CAUSAL_LM", bias="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calling transformers' renamed helpers
        try:
            return get_peft_model(base, config)
        except ValueError as e:  # e.g. a target module the model does not have
            raise TrainingError(f"cannot add LoRA adapters: {str(e).splitlines()[0]}") from None


@dataclass(frozen=True)
class KeepSet:
    """Reference texts whose base label distribution training keeps: their prompts (token ids), the
    scheme's answers (each label's continuation as tokens) and where the base's distributions are kept
    (computed once, before the first step; --resume reads them back)."""
    prompts: list[list[int]]
    answers: list[list[int]]
    targets_file: Path


def _answer_prefixes(answers: list[list[int]]) -> tuple[list[tuple[int, ...]], list[int]]:
    """The answer prefixes to append to a prompt so that one pass gives every label's token
    probabilities: each label's tokens but the last, without those contained in a longer one (for the 7
    labels: " strong", " moderately", " mildly"). Returns (prefixes, the prefix serving each label)."""
    wanted = sorted({tuple(a[:-1]) for a in answers}, key=len, reverse=True)
    prefixes: list[tuple[int, ...]] = []
    for prefix in wanted:
        if not any(longer[:len(prefix)] == prefix for longer in prefixes):
            prefixes.append(prefix)
    owner = [next(j for j, p in enumerate(prefixes) if p[:len(a) - 1] == tuple(a[:-1])) for a in answers]
    return prefixes, owner


def label_log_probs(model, prompts: list[list[int]], answers: list[list[int]], device):
    """log p(label | prompt), shape (prompts, labels), as the engine scores labels: the sum of each label's
    token log-probabilities, normalised over the label set. The output layer runs at the answer positions
    only, each once."""
    import torch

    prefixes, owner = _answer_prefixes(answers)
    sequences = [prompt + list(prefix) for prompt in prompts for prefix in prefixes]
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    places: dict[tuple[int, int], int] = {}  # (sequence, position) -> row of the output-layer input
    pick_row, pick_token, text_of, label_of = [], [], [], []
    for i, prompt in enumerate(prompts):
        for label, answer in enumerate(answers):
            sequence = i * len(prefixes) + owner[label]
            for k, token in enumerate(answer):  # token k is predicted at the position before it
                place = places.setdefault((sequence, len(prompt) - 1 + k), len(places))
                pick_row.append(place)
                pick_token.append(token)
                text_of.append(i)
                label_of.append(label)
    llama = model.get_base_model()
    hidden = llama.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    at = list(places)
    picked = hidden[torch.tensor([s for s, _ in at], device=device), torch.tensor([p for _, p in at], device=device)]
    log_probs = torch.log_softmax(llama.lm_head(picked).float(), dim=-1)
    token_log_probs = log_probs[torch.tensor(pick_row, device=device), torch.tensor(pick_token, device=device)]
    scores = torch.zeros((len(prompts), len(answers)), device=device, dtype=token_log_probs.dtype)
    scores = scores.index_put((torch.tensor(text_of, device=device), torch.tensor(label_of, device=device)),
                              token_log_probs, accumulate=True)
    return torch.log_softmax(scores, dim=-1)


def keep_loss(model, keep: KeepSet, indices: list[int], base_log_probs, device):
    """KL(base || tuned) of the label distributions on these reference texts, averaged over them."""
    tuned = label_log_probs(model, [keep.prompts[i] for i in indices], keep.answers, device)
    base = base_log_probs[indices].to(device)
    return (base.exp() * (base - tuned)).sum(dim=-1).mean()


def base_distributions(model, keep: KeepSet, device, batch_texts: int = 16):
    """The base's label distributions on every reference text (the adapters still at their start, where
    LoRA's B matrices are zero: the model is the base), computed once and kept in keep.targets_file."""
    import torch

    if keep.targets_file.exists():
        saved = torch.load(keep.targets_file, map_location="cpu", weights_only=True)
        if saved.shape == (len(keep.prompts), len(keep.answers)):
            return saved
    model.eval()
    with torch.no_grad():
        parts = [label_log_probs(model, keep.prompts[start:start + batch_texts], keep.answers, device).cpu()
                 for start in range(0, len(keep.prompts), batch_texts)]
    model.train()
    targets = torch.cat(parts)
    _save_checkpoint(keep.targets_file, targets)
    return targets


def training_step(model, batch: list[Example], optimizer, device, keep_term: Callable[[], object] | None = None) -> float:
    """One optimizer step on a batch: the mean loss over its answer tokens (plus `keep_term()`, the
    weighted keep term, when given), backward, AdamW. Returns the answer-token loss alone."""
    import torch

    logits, targets, _ = _answer_logits(model, batch, device)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    total = loss + keep_term() if keep_term is not None else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.item()


def new_optimizer(model, settings: TrainingSettings):
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)


def _adapter_state(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _load_adapter_state(model, state: dict) -> None:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(state[name])


def _schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def _save_checkpoint(path: Path, payload: dict) -> None:
    """Written aside, then renamed durably: a checkpoint is whole or absent, even if the process dies or
    the power fails mid-write."""
    import torch

    from ..files import replace_durably

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".writing")
        torch.save(payload, partial)
        replace_durably(partial, path)
    except OSError as e:
        raise TrainingError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None


def read_checkpoint(checkpoint_dir: Path) -> dict | None:
    import torch

    path = checkpoint_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - a damaged file: say which, do not guess
        raise TrainingError(f"the checkpoint {path} cannot be read ({type(e).__name__}); delete it to start over") from None


def train(base_dir: Path, train_examples: list[Example], validation_examples: list[Example],
          settings: TrainingSettings, checkpoint_dir: Path, fingerprint: dict, device: str = "cpu",
          on_step: Callable[[StepReport], None] = lambda report: None,
          stop_requested: Callable[[], bool] = lambda: False, keep: KeepSet | None = None) -> TrainingResult:
    """Train (or continue the checkpoint in checkpoint_dir, which must carry the same fingerprint) and
    return the model holding the adapter of the best validation. With `keep`, every step also keeps the
    base's label distribution on as many reference texts as the step has rows (keep_loss, weighted by
    settings.keep_weight). Raises TrainingStopped, with a checkpoint written, when stop_requested() turns
    true."""
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # CPU kernels are; CUDA ones where torch has them
    try:
        return _train(base_dir, train_examples, validation_examples, settings, checkpoint_dir, fingerprint, device,
                      on_step, stop_requested, keep)
    except (RuntimeError, MemoryError) as e:  # torch's CUDA and CPU allocators both raise RuntimeErrors
        if isinstance(e, MemoryError) or "out of memory" in str(e) or "can't allocate memory" in str(e):
            raise TrainingError(f"out of memory on the {device.upper()}: lower --batch-tokens (the last "
                                "checkpoint is kept for --resume)") from None
        raise
    finally:
        torch.use_deterministic_algorithms(deterministic)


def planned_epochs(batches_per_epoch: int, settings: TrainingSettings) -> int:
    """--epochs, or more when that many epochs give fewer than settings.min_steps optimizer steps."""
    if batches_per_epoch <= 0:
        return settings.epochs
    return max(settings.epochs, math.ceil(settings.min_steps / batches_per_epoch))


def _train(base_dir, train_examples, validation_examples, settings, checkpoint_dir, fingerprint, device, on_step,
           stop_requested, keep) -> TrainingResult:
    import torch

    started = time.perf_counter()
    try:
        model = _load_lora_model(base_dir, settings, device)
    except OSError as e:
        raise TrainingError(f"cannot load the base from {base_dir}: {str(e).splitlines()[0]}") from None
    epochs = planned_epochs(len(epoch_batches(train_examples, settings.batch_tokens, settings.seed, 0)), settings)
    plan = [(epoch, batch) for epoch in range(epochs)
            for batch in epoch_batches(train_examples, settings.batch_tokens, settings.seed, epoch)]
    total = len(plan)
    validate_at = _validation_steps(plan, settings.validations_per_epoch)
    optimizer = new_optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, max(1, round(total * settings.warmup_share))))

    state = {"step": 0, "best_loss": math.inf, "best_step": 0, "since_best": 0, "history": [], "done": None}
    best_adapter = _adapter_state(model)
    saved = read_checkpoint(checkpoint_dir)
    if saved is not None:
        if saved["fingerprint"] != fingerprint:
            raise TrainingError(f"the checkpoint in {checkpoint_dir} was made with other data, base or settings; "
                                "run with the same ones, or delete that folder to start over")
        state = saved["state"]
        _load_adapter_state(model, saved["adapter"])
        best_adapter = saved["best_adapter"]
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["rng"])
        if device == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"])

    def checkpoint() -> None:
        _save_checkpoint(checkpoint_dir / CHECKPOINT_FILE, {
            "fingerprint": fingerprint, "state": state, "adapter": _adapter_state(model),
            "best_adapter": best_adapter, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state() if device == "cuda" else None,
        })

    def run_validation() -> bool:
        """Validate at the current step; True when training should stop early. Step 0 (the base as it
        is) is shown and recorded, but never kept as the result: whether the trained adapter is better
        than the base is for the before/after comparison of the converted files to say."""
        nonlocal best_adapter
        figures = validate(model, validation_examples, settings.batch_tokens, device)
        state["history"].append({"step": state["step"], **{k: round(v, 6) for k, v in figures.items()}})
        on_step(StepReport(state["step"], total, state["step"] / max(total, 1) * settings.epochs,
                           validation=figures))
        if state["step"] == 0:
            return False
        if figures["loss"] < state["best_loss"] - MIN_IMPROVEMENT:
            state["best_loss"], state["best_step"], state["since_best"] = figures["loss"], state["step"], 0
            best_adapter = _adapter_state(model)
            return False
        state["since_best"] += 1
        return state["since_best"] >= settings.patience

    keep_term_at = None
    if keep is not None and keep.prompts and settings.keep_weight > 0:
        if saved is not None and not keep.targets_file.exists():  # they would be the trained model's, not the base's
            raise TrainingError(f"{keep.targets_file} is missing: delete {checkpoint_dir} to start over")
        targets = base_distributions(model, keep, device)  # before any step: the adapters are still zero
        keep_order = list(range(len(keep.prompts)))
        random.Random(settings.seed * 1_000_003 + 7).shuffle(keep_order)

        def keep_term(step: int, rows: int):
            """The reference texts of this step (a function of the step alone: a resumed run takes the same)."""
            indices = [keep_order[(step * rows + j) % len(keep_order)] for j in range(min(rows, len(keep_order)))]
            return lambda: settings.keep_weight * keep_loss(model, keep, indices, targets, device)
        keep_term_at = keep_term

    model.train()
    if state["done"] is None:
        if not state["history"]:  # the base itself, step 0: the figures the training starts from
            run_validation()
            checkpoint()
        last_saved = time.perf_counter()
        while state["step"] < total:
            if stop_requested():
                checkpoint()
                raise TrainingStopped(state["step"], total)
            _, batch_indices = plan[state["step"]]
            loss = training_step(model, [train_examples[i] for i in batch_indices], optimizer, device,
                                 keep_term_at(state["step"], len(batch_indices)) if keep_term_at else None)
            schedule.step()
            state["step"] += 1
            on_step(StepReport(state["step"], total, state["step"] / total * settings.epochs, loss=loss))
            if state["step"] in validate_at:
                stop_early = run_validation()
                if stop_early:
                    state["done"] = "early stopping"
                checkpoint()
                last_saved = time.perf_counter()
                if stop_early:
                    break
            elif time.perf_counter() - last_saved > CHECKPOINT_EVERY_S:
                checkpoint()
                last_saved = time.perf_counter()
        if state["done"] is None:
            state["done"] = "epochs"
            checkpoint()
    _load_adapter_state(model, best_adapter)
    model.eval()
    return TrainingResult(model, state["step"], total, state["best_step"], state["done"], device,
                          list(state["history"]), time.perf_counter() - started, epochs)


def _validation_steps(plan: list[tuple[int, list[int]]], per_epoch: int) -> set[int]:
    """Steps (counted from 1) after which validation runs: evenly within each epoch, always at its end."""
    steps, start = set(), 0
    for epoch in sorted({epoch for epoch, _ in plan}):
        count = sum(1 for e, _ in plan if e == epoch)
        for k in range(1, per_epoch + 1):
            steps.add(start + max(1, round(count * k / per_epoch)))
        start += count
    return steps


def merge_adapter(model, base_dir: Path, destination: Path) -> None:
    """The adapter merged into the base weights (as the model card's recipe did), saved as a Hugging Face
    checkpoint in the base's own dtype, with the base's tokenizer files and model card (its license)."""
    import shutil

    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_dir)
    base_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    if isinstance(base_dtype, str):
        base_dtype = getattr(torch, base_dtype)
    merged = model.merge_and_unload().to("cpu").to(base_dtype)
    destination.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(destination, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "README.md"):
        if (base_dir / name).exists():
            shutil.copy(base_dir / name, destination / name)


def save_adapter(model, destination: Path) -> None:
    """The adapter alone (PEFT's format, safetensors): to merge again or to inspect."""
    model.save_pretrained(destination, safe_serialization=True)
