"""A proposer double: a local OpenAI-compatible server (tests/helpers/fault_server.py) whose chat answers are
canned instruction rewrites, one list per call in turn; completions with logprobs score labels as the
fault server does, so the same server can be the optimized model too."""

from __future__ import annotations

from typing import Any

from tests.helpers.fault_server import FaultServer, words

REWRITES = [
    "INSTRUCTION: Decide whether the review is positive or negative.\nINSTRUCTION: Read the review carefully.",
    "INSTRUCTION: Judge the reviewer's overall feeling about the product.\nINSTRUCTION: Say how the customer felt.",
]


class ProposerServer(FaultServer):
    def __init__(self, rewrites: list[str] | None = None, **options: Any):
        super().__init__(**options)
        self.rewrites = rewrites or REWRITES
        self.prompts: list[str] = []

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not path.endswith("/chat/completions"):
            return super().answer(path, body)
        with self.lock:
            content = "\n".join(m.get("content", "") for m in body.get("messages", []))
            self.prompts.append(content)
            reply = self.rewrites[(len(self.prompts) - 1) % len(self.rewrites)]
        choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        return 200, {"object": "chat.completion", "choices": [choice],
                     "usage": {"prompt_tokens": words(content), "completion_tokens": words(reply)}}
