"""OpenAI supervised fine-tuning rules for chat JSONL, billed-token counting and training prices."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MIN_EXAMPLES = 10
MAX_EXAMPLE_TOKENS = 65_536  # per-example cap for the gpt-4o-mini / gpt-4.1 family
ROLES = {"system", "user", "assistant", "tool", "function", "developer"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id"}
DEFAULT_BASE = "gpt-4o-mini-2024-07-18"

# Training price, dollars per million billed tokens (tokens in the file x epochs).
TRAINING_PRICES: dict[str, float] = {
    "gpt-4o-mini": 3.00,
    "gpt-4o": 25.00,
    "gpt-4.1": 25.00,
    "gpt-4.1-mini": 5.00,
    "gpt-4.1-nano": 1.50,
    "gpt-3.5-turbo": 8.00,
}


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based example number
    message: str

    def __str__(self) -> str:
        return f"example {self.line}: {self.message}"


def training_price(model: str) -> float | None:
    if model in TRAINING_PRICES:
        return TRAINING_PRICES[model]
    family = max((n for n in TRAINING_PRICES if model.startswith(n + "-")), key=len, default=None)
    return TRAINING_PRICES[family] if family else None


def default_counter() -> Callable[[str], int]:
    """tiktoken's o200k_base where its file is available offline, else about four characters a token."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
        return lambda text: len(encoding.encode(text))
    except Exception:  # noqa: BLE001 - no cached encoding (no network): estimate
        return lambda text: max(1, (len(text) + 3) // 4)


def example_tokens(record: dict[str, Any], count: Callable[[str], int]) -> int:
    """Tokens of one chat example as billed: 3 per message + role + content (+ name), 3 to prime the reply."""
    total = 3
    for message in record.get("messages", []):
        total += 3 + count(str(message.get("role", ""))) + count(str(message.get("content") or ""))
        if "name" in message:
            total += 1 + count(str(message["name"]))
    return total


def validate(records: Sequence[Any], count: Callable[[str], int] | None = None,
             max_tokens: int = MAX_EXAMPLE_TOKENS) -> list[Problem]:
    """Every rule broken, by example: format, roles, missing content, an assistant answer, token cap."""
    count = count or default_counter()
    problems: list[Problem] = []
    if len(records) < MIN_EXAMPLES:
        problems.append(Problem(0, f"{len(records)} examples; OpenAI requires at least {MIN_EXAMPLES}"))
    for line, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list) or not record["messages"]:
            problems.append(Problem(line, "expected {\"messages\": [...]} with at least one message"))
            continue
        extra = set(record) - {"messages", "tools", "functions", "parallel_tool_calls"}
        if extra:
            problems.append(Problem(line, f"unexpected keys {sorted(extra)}"))
        for i, message in enumerate(record["messages"], start=1):
            if not isinstance(message, dict):
                problems.append(Problem(line, f"message {i} is not an object"))
                continue
            role = message.get("role")
            if role not in ROLES:
                problems.append(Problem(line, f"message {i} has unknown role {role!r}"))
            unknown = set(message) - MESSAGE_KEYS
            if unknown:
                problems.append(Problem(line, f"message {i} has unrecognized keys {sorted(unknown)}"))
            content = message.get("content")
            if (content is None or (isinstance(content, str) and not content.strip())) and not (
                    role == "assistant" and (message.get("tool_calls") or message.get("function_call"))):
                problems.append(Problem(line, f"message {i} ({role}) has no content"))
            elif content is not None and not isinstance(content, str | list):
                problems.append(Problem(line, f"message {i} content must be text"))
            if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
                problems.append(Problem(line, f"message {i}: weight must be 0 or 1, on assistant messages only"))
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in record["messages"]):
            problems.append(Problem(line, "no assistant message to learn from"))
        tokens = example_tokens(record, count)
        if tokens > max_tokens:
            problems.append(Problem(line, f"{tokens} tokens, over the {max_tokens}-token limit per example"))
    return problems


def billed_tokens(records: Sequence[dict[str, Any]], epochs: int, count: Callable[[str], int] | None = None) -> int:
    count = count or default_counter()
    return sum(example_tokens(r, count) for r in records) * epochs


def preference_record(prompt: str, chosen: str, rejected: str) -> dict[str, Any]:
    """One DPO example in the API's format: the prompt as a user turn, one preferred and one other answer."""
    return {"input": {"messages": [{"role": "user", "content": prompt}]},
            "preferred_output": [{"role": "assistant", "content": chosen}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}]}


def preference_tokens(record: dict[str, Any], count: Callable[[str], int]) -> int:
    """Billed tokens of a DPO example: the input once, both answers."""
    messages = [*record.get("input", {}).get("messages", []), *record.get("preferred_output", []),
                *record.get("non_preferred_output", [])]
    return example_tokens({"messages": messages}, count)


def validate_preferences(records: Sequence[Any], count: Callable[[str], int] | None = None,
                         max_tokens: int = MAX_EXAMPLE_TOKENS) -> list[Problem]:
    """The DPO file rules: input.messages ending with a user turn, exactly one assistant message on each
    side with text content, the two answers different, the token cap, at least MIN_EXAMPLES examples."""
    count = count or default_counter()
    problems: list[Problem] = []
    if len(records) < MIN_EXAMPLES:
        problems.append(Problem(0, f"{len(records)} examples; OpenAI requires at least {MIN_EXAMPLES}"))
    for line, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            problems.append(Problem(line, "expected an object"))
            continue
        extra = set(record) - {"input", "preferred_output", "non_preferred_output"}
        if extra:
            problems.append(Problem(line, f"unexpected keys {sorted(extra)}"))
        messages = (record.get("input") or {}).get("messages") if isinstance(record.get("input"), dict) else None
        if not isinstance(messages, list) or not messages:
            problems.append(Problem(line, "expected \"input\": {\"messages\": [...]} with at least one message"))
        elif not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
            problems.append(Problem(line, "the input must end with a user message"))
        answers = []
        for side in ("preferred_output", "non_preferred_output"):
            output = record.get(side)
            if (not isinstance(output, list) or len(output) != 1 or not isinstance(output[0], dict)
                    or output[0].get("role") != "assistant"):
                problems.append(Problem(line, f"{side} must hold exactly one assistant message"))
                continue
            content = output[0].get("content")
            if not isinstance(content, str) or not content.strip():
                problems.append(Problem(line, f"{side} has no text content"))
            answers.append(content)
        if len(answers) == 2 and answers[0] == answers[1]:
            problems.append(Problem(line, "preferred and non-preferred answers are the same"))
        if not problems or problems[-1].line != line:
            tokens = preference_tokens(record, count)
            if tokens > max_tokens:
                problems.append(Problem(line, f"{tokens} tokens, over the {max_tokens}-token limit per example"))
    return problems
