"""`finsent tune` (issue 21): LoRA fine-tuning of the model on a desk's own labelled rows.

- examples: the training data, read as `finsent eval` reads a labelled file, checked, split into
  training and validation rows and turned into prompt + answer token sequences (plain data, no torch);
- training: PEFT LoRA adapters on transformers' Llama, a plain torch loop with resumable checkpoints and
  validation that decides early stopping;
- run: the whole command as one job (train, merge, convert with the project's converter, `finsent eval`
  before and after), writing its output folder whole or not at all;
- adapter_gguf: the trained adapter as a GGUF LoRA file (`--adapter-only`), for `finsent serve --lora`.
"""
