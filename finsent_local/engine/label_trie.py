"""Labels as a token trie, so a label set is scored with one decode per batch of texts.

Each label is a token sequence (" strong", " negative"). Labels sharing a first token share a node.
A node with children needs the model's next-token distribution after its path: the root uses the
logits at the prompt's last token; every deeper inner node ("branch") is evaluated as one extra token
on a sequence of its own that shares the prompt's KV cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrieNode:
    token: int | None  # None for the root
    depth: int
    children: dict[int, "TrieNode"] = field(default_factory=dict)
    label_index: int | None = None  # set on the node where a label ends
    branch_index: int | None = None  # set on inner nodes below the root: which branch sequence

    @property
    def is_inner(self) -> bool:
        return bool(self.children)


class LabelTrie:
    def __init__(self, label_tokens: list[list[int]]):
        if any(not tokens for tokens in label_tokens):
            raise ValueError("a label tokenized to nothing")
        self.label_tokens = label_tokens
        self.root = TrieNode(None, 0)
        for index, tokens in enumerate(label_tokens):
            node = self.root
            for token in tokens:
                node = node.children.setdefault(token, TrieNode(token, node.depth + 1))
            if node.label_index is not None:
                raise ValueError("two labels tokenize identically")
            node.label_index = index
        # Branches in depth-first order; each knows the tokens of its path from the root.
        self.branches: list[tuple[TrieNode, list[int]]] = []
        self._collect(self.root, [])

    def _collect(self, node: TrieNode, path: list[int]) -> None:
        for child in node.children.values():
            child_path = path + [child.token]
            if child.is_inner:
                child.branch_index = len(self.branches)
                self.branches.append((child, child_path))
            self._collect(child, child_path)

    @property
    def n_branches(self) -> int:
        return len(self.branches)

    def branch_tokens(self) -> list[tuple[int, int, list[int]]]:
        """For branch i: (its last token, its depth, the branches that must see that token).

        Every prefix of a branch's path is itself a branch (an inner node), so the tokens to evaluate
        are exactly one per branch. A token at depth d sits at position prompt_len + d - 1 and carries
        the sequence ids of every branch below it (including its own).
        """
        out = []
        for node, path in self.branches:
            below = [j for j, (_, other) in enumerate(self.branches) if other[: len(path)] == path]
            out.append((node.token, node.depth, below))
        return out

    def label_logprobs(self, root_logprobs, branch_logprobs: list) -> list[float]:
        """Sum of next-token log-probabilities along each label's path.

        root_logprobs / branch_logprobs[i]: callables token -> log p(token | path so far).
        """
        out = []
        for tokens in self.label_tokens:
            node, total = self.root, 0.0
            for token in tokens:
                lookup = root_logprobs if node is self.root else branch_logprobs[node.branch_index]
                total += lookup(token)
                node = node.children[token]
            out.append(total)
        return out
