import math

import pytest
import torch
import torch.nn.functional as F
from tiny import make_model, make_tokenizer

from alignment.augment import pair_example, recovery_example, tokenize_pair, tokenize_triplet
from alignment.objectives import (
    IGNORE_INDEX,
    beta_for_positions,
    constrained_loss,
    sft_loss,
    token_logprobs,
)


def _batch(examples, pad_id):
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.tensor(
        [e["input_ids"] + [pad_id] * (width - len(e["input_ids"])) for e in examples]
    )
    labels = torch.tensor(
        [e["labels"] + [IGNORE_INDEX] * (width - len(e["labels"])) for e in examples]
    )
    mask = torch.tensor(
        [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
    )
    return ids, labels, mask


@pytest.fixture(scope="module")
def setup():
    tok = make_tokenizer("chatml")
    model = make_model(tok)
    examples = [
        pair_example(tokenize_pair(tok, "How do I bake bread?", "Mix flour, water and yeast.")),
        recovery_example(
            tokenize_triplet(
                tok,
                "Pick a lock",
                "Sure, here is how to pick a lock: insert the wrench",
                "I cannot help with that.",
            ),
            k=5,
        ),
    ]
    ids, labels, mask = _batch(examples, tok.pad_token_id)
    return tok, model, ids, labels, mask


def test_sft_loss_is_mean_cross_entropy_over_answer_tokens(setup):
    _, model, ids, labels, mask = setup
    logits = model(input_ids=ids, attention_mask=mask).logits
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
    assert torch.allclose(sft_loss(logits, labels), expected, atol=1e-5)


def test_loss_ignores_prompt_and_prefix_tokens(setup):
    _, model, ids, labels, mask = setup
    logits = model(input_ids=ids, attention_mask=mask).logits.detach().requires_grad_(True)
    sft_loss(logits, labels).backward()
    # logits at t predict labels[t+1]: rows whose next label is ignored must get no gradient
    no_loss = labels[:, 1:] == IGNORE_INDEX
    assert logits.grad[:, :-1][no_loss].abs().max() == 0
    assert logits.grad[:, :-1][~no_loss].abs().amax(dim=-1).min() > 0
    assert logits.grad[:, -1].abs().max() == 0


def test_num_items_makes_accumulated_micro_batches_equal_the_full_batch(setup):
    _, model, ids, labels, mask = setup
    logits = model(input_ids=ids, attention_mask=mask).logits
    total = int((labels[:, 1:] != IGNORE_INDEX).sum())
    split = sum(sft_loss(logits[i : i + 1], labels[i : i + 1], num_items=total) for i in range(2))
    assert torch.allclose(split, sft_loss(logits, labels), atol=1e-6)


def _paper_loss(logits, labels, ref, betas=(0.5, 2, 2, 2, 2), later=0.1):
    """Direct transcription of the paper's formula, one token at a time."""
    total, count = 0.0, 0
    logp_all = logits.float().log_softmax(-1)
    for b in range(labels.shape[0]):
        t_in_answer = 0
        for t in range(1, labels.shape[1]):
            y = int(labels[b, t])
            if y == IGNORE_INDEX:
                continue
            t_in_answer += 1
            beta = betas[t_in_answer - 1] if t_in_answer <= len(betas) else later
            ratio = logp_all[b, t - 1, y] - ref[b, t]
            total = total - (2 / beta) * torch.log(torch.sigmoid(beta * ratio))
            count += 1
    return total / count


def test_constrained_loss_matches_the_paper_formula(setup):
    _, model, ids, labels, mask = setup
    logits = model(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(1)
    ref = torch.randn(labels.shape) - 3.0
    assert torch.allclose(
        constrained_loss(logits, labels, ref), _paper_loss(logits, labels, ref), atol=1e-5
    )


def test_constrained_gradient_equals_cross_entropy_at_initialisation(setup):
    _, model, ids, labels, mask = setup
    logits = model(input_ids=ids, attention_mask=mask).logits.detach()
    ref = torch.zeros(labels.shape)
    ref[:, 1:][labels[:, 1:] != IGNORE_INDEX] = token_logprobs(logits, labels)  # pi_ref == pi_theta
    a = logits.clone().requires_grad_(True)
    constrained_loss(a, labels, ref).backward()
    b = logits.clone().requires_grad_(True)
    sft_loss(b, labels).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)  # weight w_t = 2 sigmoid(0) = 1


def _optimise_one_token(beta, steps=2000):
    """Gradient descent on one free distribution with the constrained loss at answer position 6+."""
    logits = torch.zeros(1, 2, 8, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, 3]])
    ref_logp = math.log(1 / 8)
    ref = torch.tensor([[0.0, ref_logp]])
    opt = torch.optim.SGD([logits], lr=0.05)  # small steps: no overshoot past the reference
    for _ in range(steps):
        opt.zero_grad()
        constrained_loss(logits, labels, ref, betas=(), later_beta=beta).backward()
        opt.step()
    return float(token_logprobs(logits.detach(), labels)), ref_logp


def test_small_beta_behaves_like_cross_entropy():
    logp, ref = _optimise_one_token(beta=1e-3)
    assert logp > -0.05  # driven to probability ~1, far above the reference


def test_large_beta_stays_at_the_reference():
    logp, ref = _optimise_one_token(beta=200.0)
    assert abs(logp - ref) < 0.1


def test_beta_schedule_defaults():
    betas = beta_for_positions(torch.arange(1, 9))
    assert betas.tolist() == pytest.approx([0.5, 2, 2, 2, 2, 0.1, 0.1, 0.1])
