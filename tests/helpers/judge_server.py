"""A local OpenAI-compatible judge with canned judgments: FaultServer's HTTP plumbing, with each
answer chosen by a function of the prompt text (chat messages joined, or the completion prompt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.helpers.fault_server import FaultServer, words


class JudgeServer(FaultServer):
    def __init__(self, judge: Callable[[str], str], **options: Any):
        super().__init__(**options)
        self.judge = judge
        self.prompts: list[str] = []

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path.endswith("/chat/completions"):
            prompt = "\n".join(m.get("content", "") for m in body.get("messages", []))
            reply = self._reply(prompt)
            choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
            return 200, {"object": "chat.completion", "choices": [choice],
                         "usage": {"prompt_tokens": words(prompt), "completion_tokens": words(reply)}}
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts or [""]
        replies = [self._reply(p) for p in prompts]
        choices = [{"index": i, "text": r, "logprobs": None, "finish_reason": "stop"} for i, r in enumerate(replies)]
        return 200, {"object": "text_completion", "choices": choices,
                     "usage": {"prompt_tokens": sum(map(words, prompts)), "completion_tokens": sum(map(words, replies))}}

    def _reply(self, prompt: str) -> str:
        with self.lock:
            self.prompts.append(prompt)
        return self.judge(prompt)


def verdict(passed: bool, score: float, reason: str) -> str:
    return json.dumps({"reason": reason, "pass": passed, "score": score})
