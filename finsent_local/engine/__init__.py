"""The engine: llama.cpp wrapped (llama_runtime), label sets and prompts (labels, label_trie), the
classifier itself (classifier), the thread that owns it (worker), CPU buffer checks (cpu_buffers),
validation + result cache + worker as one service (service, cache). Imports only leaves."""
