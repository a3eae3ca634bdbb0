"""The trained LoRA adapter as a GGUF adapter file (`finsent tune --adapter-only`), for
`finsent serve --model BASE.gguf --lora ADAPTER.gguf` (the format: engine/lora.py).

The adapter must meet the base file's tensors as the converter wrote them (convert/llama_layout.py), so
the converter's own tensor plan decides each name and each change: Q and K rows permuted for llama.cpp's
rope (the same permutation on B's rows, since the adapted weight is B A), and the MLP padded to the base
file's width (zero rows of B for gate and up, zero columns of A for down: the padded channels stay 0).
Tensors are float32: the adapter exactly as trained (8.8M parameters for rank 16 on Llama-FinSent-S: 35 MB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..convert.checkpoint import Checkpoint
from ..convert.llama_layout import pad_cols, plan_tensors
from ..engine.lora import ADAPTER_TYPE_KEY, ALPHA_KEY, BASE_KEY, FFN_WIDTH_KEY


def adapter_tensors(model, base_dir: Path, ffn_width: int) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, array) for each adapted weight's lora_a and lora_b, in the base file's tensor order."""
    from peft import get_peft_model_state_dict

    checkpoint = Checkpoint(base_dir)
    state = get_peft_model_state_dict(model)
    out, used = [], set()
    for plan in plan_tensors(checkpoint.config, checkpoint.has("lm_head.weight"), ffn_width):
        if plan.hf_name is None:
            continue
        module = "base_model.model." + plan.hf_name.removesuffix(".weight")
        if module + ".lora_A.weight" not in state:
            continue
        a = state[module + ".lora_A.weight"].detach().float().cpu().numpy()  # (rank, in)
        b = state[module + ".lora_B.weight"].detach().float().cpu().numpy()  # (out, rank)
        if plan.hf_name.endswith("down_proj.weight"):
            a = pad_cols(a, ffn_width)  # the base's padding is on its inputs: A's columns
        elif plan.transform is not None:
            b = plan.transform(b)  # row changes (Q/K permutation, gate/up padding) fall on B
        out += [(plan.gguf_name + ".lora_a", np.ascontiguousarray(a, dtype=np.float32)),
                (plan.gguf_name + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))]
        used |= {module + ".lora_A.weight", module + ".lora_B.weight"}
    left = sorted(set(state) - used)
    if left:  # an adapted weight the base file has no tensor for: the adapter would silently lack it
        raise ValueError(f"no place in the GGUF adapter for {left[0]}" + (f" and {len(left) - 1} more" if len(left) > 1 else ""))
    return out


def write_adapter_gguf(model, base_dir: Path, ffn_width: int, alpha: float, base_name: str, path: Path) -> None:
    import gguf

    tensors = adapter_tensors(model, base_dir, ffn_width)
    if not tensors:
        raise ValueError("the model holds no LoRA adapter weights")
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(ADAPTER_TYPE_KEY, "lora")
        writer.add_float32(ALPHA_KEY, float(alpha))
        writer.add_uint32(FFN_WIDTH_KEY, ffn_width)
        writer.add_string(BASE_KEY, base_name)
        for name, array in tensors:
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
