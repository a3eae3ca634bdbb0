"""LoRA adapters in GGUF, applied at load time (`finsent serve --lora FILE`): one base file, several desks'
adapters.

The format is llama.cpp's (llama-adapter.cpp): `general.type` "adapter", `adapter.type` "lora",
`adapter.lora.alpha`, and for each adapted weight `<base tensor>.lora_a` (ggml shape [in, rank]) and
`.lora_b` ([rank, out]); llama.cpp adds (alpha / rank) * B(A x) to that weight's product. `finsent tune
--adapter-only` writes it (tuning/adapter_gguf.py); adapters from llama.cpp's own converter load too.

llama.cpp refuses an adapter that does not fit the model with a message in its log only; fit is checked
here first, from both files' headers, so the user gets one line that says which tensor and why.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_TYPE_KEY = "adapter.type"
ALPHA_KEY = "adapter.lora.alpha"
FFN_WIDTH_KEY = "finsent.adapter.ffn_width"  # the MLP width of the base file it was made for (padding included)
BASE_KEY = "finsent.adapter.base"  # the Hugging Face base it was trained on (repo id or folder name)


class AdapterMismatch(ValueError):
    """The file is not a LoRA adapter, or not one for this model: one line for the user."""


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _reader(path: Path, what: str):
    import gguf

    try:
        return gguf.GGUFReader(path)
    except (OSError, ValueError) as e:
        raise AdapterMismatch(f"cannot read {what} {path}: not a GGUF file ({e})") from None


def check_adapter(model_path: Path, adapter_path: Path) -> None:
    """Raise AdapterMismatch unless adapter_path is a LoRA adapter every tensor of which fits model_path."""
    adapter = _reader(adapter_path, "the adapter")
    if _field(adapter, "general.type") != "adapter" or _field(adapter, ADAPTER_TYPE_KEY) != "lora":
        raise AdapterMismatch(f"{adapter_path} is not a LoRA adapter GGUF (made by finsent tune --adapter-only, or "
                              "llama.cpp's convert_lora_to_gguf.py)")
    model = _reader(model_path, "the model")
    if _field(adapter, "general.architecture") != _field(model, "general.architecture"):
        raise AdapterMismatch(f"{adapter_path} is for {_field(adapter, 'general.architecture')} models, "
                              f"{model_path.name} is {_field(model, 'general.architecture')}")
    shapes = {t.name: [int(n) for n in t.shape] for t in model.tensors}
    pairs: dict[str, dict[str, list[int]]] = {}
    for tensor in adapter.tensors:
        base, _, part = tensor.name.rpartition(".")
        pairs.setdefault(base, {})[part] = [int(n) for n in tensor.shape]
    for name, parts in pairs.items():
        if set(parts) != {"lora_a", "lora_b"}:
            raise AdapterMismatch(f"{adapter_path}: {name} lacks its lora_a or lora_b tensor")
        if name not in shapes:
            raise AdapterMismatch(f"{adapter_path} adapts {name}, which {model_path.name} does not have")
        a, b, weight = parts["lora_a"], parts["lora_b"], shapes[name]
        if a[0] != weight[0] or b[1] != weight[1] or a[1] != b[0]:
            width = _field(adapter, FFN_WIDTH_KEY)
            hint = (f" (the adapter was made for a base file with an MLP width of {width}: convert the base with the "
                    "--outtype given to finsent tune)") if width is not None else ""
            raise AdapterMismatch(f"{adapter_path.name} does not fit {model_path.name}: {name} is {weight[1]} x "
                                  f"{weight[0]} in the model, the adapter is for {b[1]} x {a[0]}{hint}")
