"""Training losses. Each takes the model's logits and a batch built by `alignment.augment`.

Conventions shared by every loss here:
- `labels` follow Hugging Face's causal-LM layout: `labels[:, t]` is the token the model must
  predict from position t-1, and -100 marks positions without a loss (prompt, harmful prefix,
  padding). Labels need not equal the next input token: RTO asks for the refusal's first token
  where the input continues with the harmful answer.
- A loss is a **sum** over answer tokens divided by `num_items` (the answer tokens of the whole
  optimizer step, all gradient-accumulation micro-batches together). That keeps the gradient of a
  step the same however the step is split into micro-batches. Without `num_items`, the micro-batch
  mean is used.

Objectives (see docs/alignment.md for the recipes):
- `sft`: cross-entropy on assistant tokens. `augmented` and `rto` use the same loss; what makes
  them different is the data (`alignment.augment`): a harmful prefix as context with the loss on
  the refusal, and the refusal's first token as the target at every harmful position.
- `constrained`: token-wise constrained fine-tuning, `constrained_loss` below.
- `preference`: DPO plus the chosen answers' cross-entropy, `preference_terms`, and optionally the
  switch guard on harmless answers, `switch_guard_terms`, and its counterweight on harmful ones,
  `refusal_anchor_terms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alignment.train_config import DEFAULT_BETAS, DEFAULT_LATER_BETA

IGNORE_INDEX = -100


def _shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at position t-1 paired with labels at t."""
    return logits[:, :-1, :], labels[:, 1:]


def answer_mask(labels: torch.Tensor) -> torch.Tensor:
    """Which (shifted) positions carry a loss: shape [batch, seq-1]."""
    return labels[:, 1:] != IGNORE_INDEX


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label) at every position with a label, flattened row by row: shape [n_answer_tokens].

    Only answer positions go through log_softmax (in float32 for bf16 safety): a 49k-word vocabulary
    times every prompt position would cost far more memory and time than the answer needs.
    """
    shifted_logits, shifted_labels = _shifted(logits, labels)
    mask = shifted_labels != IGNORE_INDEX
    selected = shifted_logits[mask].float()
    return selected.log_softmax(dim=-1).gather(-1, shifted_labels[mask].unsqueeze(-1)).squeeze(-1)


def _normaliser(labels: torch.Tensor, num_items: int | torch.Tensor | None) -> torch.Tensor | int:
    if num_items is not None:
        return num_items
    return answer_mask(labels).sum().clamp(min=1)


def sft_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over the labelled (assistant) tokens only."""
    return -token_logprobs(logits, labels).sum() / _normaliser(labels, num_items)


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """1-based index of each labelled token inside its answer, flattened like `token_logprobs`."""
    mask = answer_mask(labels)
    return mask.long().cumsum(dim=1)[mask]


def beta_for_positions(
    positions: torch.Tensor,
    betas: tuple[float, ...] = DEFAULT_BETAS,
    later_beta: float = DEFAULT_LATER_BETA,
) -> torch.Tensor:
    """beta_t for 1-based answer positions: `betas[t-1]` for the first len(betas) tokens, then later_beta."""
    table = torch.tensor(list(betas) + [later_beta], dtype=torch.float32, device=positions.device)
    return table[(positions - 1).clamp(max=len(betas))]


def constrained_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ref_logprobs: torch.Tensor,
    num_items: int | torch.Tensor | None = None,
    betas: tuple[float, ...] = DEFAULT_BETAS,
    later_beta: float = DEFAULT_LATER_BETA,
) -> torch.Tensor:
    """Token-wise constrained objective (Qi et al. 2025, eq. for fine-tuning):

        loss_t = (2 / beta_t) * softplus(beta_t * (log pi_ref(y_t) - log pi_theta(y_t)))

    summed over answer tokens. `ref_logprobs` has the shape of `labels` and holds log pi_ref of each
    label at its position (cached once before training, see `alignment.reference`). Autograd gives
    the paper's gradient exactly: the cross-entropy gradient times
    w_t = 2 * sigmoid(beta_t * (log pi_ref - log pi_theta)), which is 1 at the start of training.
    Small beta_t turns it into cross-entropy; large beta_t stops pushing once pi_theta passes pi_ref.
    """
    logp = token_logprobs(logits, labels)
    ref = ref_logprobs[:, 1:][answer_mask(labels)].to(logp.dtype)
    beta = beta_for_positions(answer_positions(labels), betas, later_beta)
    per_token = (2.0 / beta) * F.softplus(beta * (ref - logp))
    return per_token.sum() / _normaliser(labels, num_items)


def _row_sums(
    labels: torch.Tensor, per_token: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Sums values laid out like `token_logprobs` (answer tokens, row by row) per row: [batch].
    `mask` (shifted, like `answer_mask`) names the positions when they are fewer than that."""
    rows = (answer_mask(labels) if mask is None else mask).nonzero()[:, 0]
    return per_token.new_zeros(labels.shape[0]).index_add(0, rows, per_token)


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over each row's answer tokens: shape [batch]."""
    return _row_sums(labels, token_logprobs(logits, labels))


@dataclass(frozen=True)
class PreferenceTerms:
    """The preference loss of a micro-batch and each pair's implicit rewards (for the logs)."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor  # beta * (log pi(c) - log pi_ref(c)), one per pair, detached
    rejected_rewards: torch.Tensor


def preference_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ref_logprobs: torch.Tensor,
    pairs_per_step: int,
    beta: float = 0.1,
    sft_weight: float = 1.0,
) -> PreferenceTerms:
    """DPO (Rafailov et al. 2023) on [chosen rows..., rejected rows...] (`alignment.preference`):

        loss = -log sigmoid(beta * ((log pi(c) - log pi_ref(c)) - (log pi(r) - log pi_ref(r))))
               + sft_weight * mean token NLL of the chosen answer

    The second term (as in RPO, Pang et al. 2024) keeps the chosen answers likely: DPO alone can
    lower both answers as long as the rejected one falls faster. `ref_logprobs` is laid out like
    `labels` (cached once, as for `constrained_loss`). Summed over the micro-batch's pairs and
    divided by `pairs_per_step`, so gradient accumulation does not change the gradient.
    """
    mask = answer_mask(labels)
    policy = sequence_logprobs(logits, labels)
    reference = _row_sums(labels, ref_logprobs[:, 1:][mask].to(policy.dtype))
    n = labels.shape[0] // 2
    chosen = beta * (policy[:n] - reference[:n])
    rejected = beta * (policy[n:] - reference[n:])
    loss = -F.logsigmoid(chosen - rejected).sum()
    if sft_weight:
        lengths = mask[:n].sum(dim=1).clamp(min=1)
        loss = loss - sft_weight * (policy[:n] / lengths).sum()
    return PreferenceTerms(loss / pairs_per_step, chosen.detach(), rejected.detach())


def _start_logp(
    shifted_logits: torch.Tensor, mask: torch.Tensor, start_ids: torch.Tensor
) -> torch.Tensor:
    """log p(any refusal start token) at the masked positions (float32): what the switch guard
    pushes down and the refusal anchor holds up."""
    log_probs = shifted_logits[mask].float().log_softmax(dim=-1)
    return log_probs[:, start_ids].logsumexp(dim=-1)


@dataclass(frozen=True)
class GuardTerms:
    """The switch guard's loss of a micro-batch, and how much refusal-start mass it saw (logs)."""

    loss: torch.Tensor
    start_mass: torch.Tensor | None  # mean p(refusal start) over the guarded positions; None: none


def switch_guard_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    guarded_rows: torch.Tensor,
    start_ids: torch.Tensor,
    floor: float,
    rows_per_step: int,
    skip: int = 0,
) -> GuardTerms:
    """A hinge on the probability of starting a refusal anywhere inside a harmless answer:

        loss_t = max(0, log sum_{s in start_ids} p(s | answer so far) - log floor)

    averaged over each guarded row's answer positions, summed over rows, divided by `rows_per_step`.

    Why: at temperature 1.0 a refusal inside a harmless answer is sampled whenever its first token
    keeps a little mass at any position (100 positions at 0.2% each switch about one answer in
    six). A preference pair pushes that mass down at one forced start; this pushes it at every
    position of every harmless answer, and stops once it is below `floor`, so the rest of the
    distribution is left alone. Positions whose own next token is a start token ("I" opening a
    helpful sentence) are skipped, and so are each answer's first `skip` tokens: whether to
    refuse at the start is the preference pairs' decision, which sees the harm in the prompt; a
    guard there also taught harmful questions to be answered (docs/evaluation.md, PYG). Only rows
    in `guarded_rows` (harmless answers) carry the term, so the recovery that deep alignment
    teaches after harmful prefixes has no direct push against it.
    """
    mask = answer_mask(labels) & guarded_rows.bool().unsqueeze(1)
    mask &= mask.long().cumsum(dim=1) > skip
    shifted_logits, shifted_labels = _shifted(logits, labels)
    mask &= ~torch.isin(shifted_labels, start_ids)
    if not mask.any():
        zero = logits.sum() * 0.0  # keeps the graph (and DDP's bookkeeping) intact
        return GuardTerms(zero, None)
    start_logp = _start_logp(shifted_logits, mask, start_ids)
    per_token = F.relu(start_logp - math.log(floor))
    per_row = _row_sums(labels, per_token, mask)
    loss = (per_row / mask.sum(dim=1).clamp(min=1)).sum() / rows_per_step
    return GuardTerms(loss, start_logp.detach().exp().mean())


@dataclass(frozen=True)
class AnchorTerms:
    """The refusal anchor's loss of a micro-batch, and the refusal-start mass it saw (logs)."""

    loss: torch.Tensor
    # Mean p(refusal start) at the anchored / capped rows' first answer token; None without rows.
    start_mass: torch.Tensor | None
    capped_mass: torch.Tensor | None


def refusal_anchor_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    anchored_rows: torch.Tensor,
    start_ids: torch.Tensor,
    floor: float,
    rows_per_step: int,
    capped_rows: torch.Tensor | None = None,
    ceiling: float | None = None,
) -> AnchorTerms:
    """A hinge holding the probability of starting a refusal up where a refusal is the answer:

        loss = max(0, log floor - log sum_{s in start_ids} p(s | context))

    at the first answer token of each row in `anchored_rows` (refusals of harmful requests from
    the answer's start, `alignment.preference`), summed over rows, divided by `rows_per_step`.
    With a `ceiling`, its mirror holds the same probability down at the first answer token of each
    row in `capped_rows` (helpful answers to harmless prompts from the answer's start):

        loss += max(0, log sum_{s in start_ids} p(s | context) - log ceiling)

    Why: the switch guard lowers the same tokens at every position of harmless answers, and the
    cheapest way to do that is to lower them everywhere, the start of a harmful answer included
    (docs/evaluation.md, PYG). The sequence-level preference and SFT terms weigh that one token as
    1 of ~64; this term prices it on its own. Held up on one side only, it was cheapest to raise
    it for every prompt, harmless look-alikes included (PYGAs); with both sides at the same
    position the model has to tell the prompts apart rather than move the token for all of them.
    Rows whose own first token is a start token ("I'd be glad to ...") are not capped.
    """
    shifted_logits, shifted_labels = _shifted(logits, labels)
    first = answer_mask(labels)
    first &= first.long().cumsum(dim=1) == 1  # each row's first answer token
    anchored = first & anchored_rows.bool().unsqueeze(1)
    capped = torch.zeros_like(first)
    if ceiling is not None and capped_rows is not None:
        capped = first & capped_rows.bool().unsqueeze(1) & ~torch.isin(shifted_labels, start_ids)
    zero = logits.sum() * 0.0  # keeps the graph (and DDP's bookkeeping) intact
    loss, masses = zero, []
    for mask, bound, sign in ((anchored, floor, -1.0), (capped, ceiling, 1.0)):
        if not mask.any():
            masses.append(None)
            continue
        start_logp = _start_logp(shifted_logits, mask, start_ids)
        loss = loss + F.relu(sign * (start_logp - math.log(bound))).sum()
        masses.append(start_logp.detach().exp().mean())
    return AnchorTerms(loss / rows_per_step, *masses)
