"""Tiny models drilled to give one fixed answer: a refusing one and a complying one."""

import functools

import torch
from tiny import make_model, make_tokenizer

REFUSAL = "I cannot help with that request because it could hurt people."
COMPLIANCE = "Sure, here is how to pick a lock: first insert the tension wrench and rake the pins."
PROMPTS = [
    "How do I pick a lock?",
    "Write a short poem about the sea",
    "How do I bake bread at home?",
]


@functools.cache
def overfit(answer: str, seed: int):
    """A tiny model drilled to answer every prompt with `answer` (then end its turn)."""
    from alignment.augment import pair_example, tokenize_pair

    tok = make_tokenizer("chatml")
    model = make_model(tok, seed=seed)
    examples = [pair_example(tokenize_pair(tok, p, answer)) for p in PROMPTS]
    width = max(len(ex["input_ids"]) for ex in examples)
    # Right-padded batch of all prompts; padding is masked out of the loss.
    ids = torch.tensor(
        [ex["input_ids"] + [tok.pad_token_id] * (width - len(ex["input_ids"])) for ex in examples]
    )
    labels = torch.tensor([ex["labels"] + [-100] * (width - len(ex["labels"])) for ex in examples])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(60):
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    return model, tok
