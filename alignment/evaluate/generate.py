"""Answer generation for evaluation: in process (batched `model.generate`, left padding) or
through any OpenAI-compatible endpoint (vLLM, the engine, or the proxy with a red-team key).

Every generator answers `complete(prompts, prefixes, sampling) -> list[Completion]`, where
`prefixes[i]` is the start of the answer forced by a prefilling attack ("" for none).
"""

from __future__ import annotations

from dataclasses import dataclass

from tqdm import tqdm


@dataclass(frozen=True)
class Sampling:
    """Decoding for one run; temperature 0 is greedy. The paper samples at 0.9 / top-p 0.6."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def label(self) -> str:
        return "greedy" if self.greedy else f"T{self.temperature}/p{self.top_p}/seed{self.seed}"


@dataclass(frozen=True)
class Completion:
    prefix: str  # the forced start of the answer
    text: str  # what the model wrote after it
    token_texts: tuple[str, ...] = ()  # the answer token by token (prefix tokens first), if known

    @property
    def answer(self) -> str:
        return self.prefix + self.text


class LocalGenerator:
    """A model in this process. Prefixes are token ids of the target's own tokenizer."""

    def __init__(self, model, tokenizer, batch_size: int = 8, system: str | None = None) -> None:
        from alignment.chat import end_of_turn_ids
        from alignment.models import best_device, prepare_tokenizer

        prepare_tokenizer(tokenizer)
        # Generation runs on a GPU when there is one; batches follow the model (`_batch`).
        self.model, self.tokenizer = model.to(best_device()).eval(), tokenizer
        self.batch_size, self.system = batch_size, system
        self.stop_ids = end_of_turn_ids(tokenizer)

    @classmethod
    def from_path(cls, spec: str | None, batch_size: int = 8) -> LocalGenerator:
        from alignment.models import load_model

        model, tokenizer = load_model(spec)
        return cls(model, tokenizer, batch_size)

    def prompt_ids(self, prompt: str) -> list[int]:
        from alignment.chat import encode_text, render_prompt

        return encode_text(self.tokenizer, render_prompt(self.tokenizer, prompt, self.system))

    def prefix_ids(self, harmful: str, k: int) -> list[int]:
        """The first k tokens of a harmful answer, as the paper tokenises and truncates it."""
        from alignment.chat import encode_text

        return encode_text(self.tokenizer, harmful)[:k] if k > 0 else []

    def complete(
        self,
        prompts: list[str],
        prefixes: list[list[int]],
        sampling: Sampling,
        desc: str = "generating",
    ) -> list[Completion]:
        if len(prompts) != len(prefixes):
            raise ValueError("one prefix (possibly empty) per prompt")
        out: list[Completion] = []
        for start in tqdm(range(0, len(prompts), self.batch_size), desc=desc, leave=False):
            rows = [
                self.prompt_ids(p) + list(x)
                for p, x in zip(
                    prompts[start : start + self.batch_size],
                    prefixes[start : start + self.batch_size],
                    strict=True,
                )
            ]
            generated = self._generate(rows, sampling, seed_offset=start)
            for prefix, new in zip(
                prefixes[start : start + self.batch_size], generated, strict=True
            ):
                out.append(self._completion(list(prefix), new))
        return out

    def _completion(self, prefix: list[int], new: list[int]) -> Completion:
        new = [t for t in new if t not in self.stop_ids and t != self.tokenizer.pad_token_id]
        decode = self.tokenizer.decode
        prefix_text = decode(prefix, skip_special_tokens=True)
        full = decode(prefix + new, skip_special_tokens=True)
        # Text per token (cumulative decode), so an onset offset maps back to a token index.
        pieces, previous = [], ""
        for i in range(1, len(prefix) + len(new) + 1):
            current = decode((prefix + new)[:i], skip_special_tokens=True)
            pieces.append(current[len(previous) :] if current.startswith(previous) else current)
            previous = current
        return Completion(prefix_text, full[len(prefix_text) :], tuple(pieces))

    def _batch(self, rows: list[list[int]]):
        import torch

        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return ids.to(self.model.device), mask.to(self.model.device)

    def _generate(
        self, rows: list[list[int]], sampling: Sampling, seed_offset: int = 0
    ) -> list[list[int]]:
        import torch

        ids, mask = self._batch(rows)
        torch.manual_seed(sampling.seed * 100_003 + seed_offset)
        options = (
            dict(do_sample=False)
            if sampling.greedy
            else dict(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0
            )
        )
        with torch.inference_mode():
            result = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=sampling.max_new_tokens,
                eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                **options,
            )
        return [row[ids.shape[1] :].tolist() for row in result]

    def rank_assisted_prefixes(
        self, prompts: list[str], k: int, is_refusal, top: int = 20
    ) -> list[list[int]]:
        """The rank-assisted prefilling attack: for k steps, force the best-ranked token among the
        model's top `top` that neither ends the turn nor makes the answer so far a refusal."""
        import torch

        prefixes: list[list[int]] = [[] for _ in prompts]
        for start in tqdm(
            range(0, len(prompts), self.batch_size), desc=f"rank-assisted k={k}", leave=False
        ):
            batch = range(start, min(start + self.batch_size, len(prompts)))
            for _ in range(k):
                ids, mask = self._batch([self.prompt_ids(prompts[i]) + prefixes[i] for i in batch])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                with torch.inference_mode():
                    logits = self.model(
                        input_ids=ids, attention_mask=mask, position_ids=positions
                    ).logits[:, -1]
                candidates = logits.topk(min(top, logits.shape[-1]), dim=-1).indices.tolist()
                for row, i in enumerate(batch):
                    prefixes[i].append(self._first_safe(prefixes[i], candidates[row], is_refusal))
        return prefixes

    def _first_safe(self, prefix: list[int], candidates: list[int], is_refusal) -> int:
        for token in candidates:
            if token in self.stop_ids or token in self.tokenizer.all_special_ids:
                continue
            if not is_refusal(self.tokenizer.decode(prefix + [token], skip_special_tokens=True)):
                return token
        return candidates[-1]  # every top token refuses: the attack fails here, keep going


class EndpointGenerator:
    """An OpenAI-compatible chat endpoint. A prefix is sent as a final assistant message that the
    server continues (vLLM's `continue_final_message`); through the proxy that needs a key whose
    policy allows prefilling. The prefix is cut with the target's tokenizer, loaded locally."""

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer,
        api_key: str = "EMPTY",
        timeout: float = 120.0,
        concurrency: int = 8,
    ) -> None:
        from alignment.openai_chat import chat_client

        self.model, self.tokenizer, self.concurrency = model, tokenizer, concurrency
        self.client = chat_client(base_url, api_key, timeout)

    def prefix_ids(self, harmful: str, k: int) -> list[int]:
        from alignment.chat import encode_text

        return encode_text(self.tokenizer, harmful)[:k] if k > 0 else []

    def complete(
        self,
        prompts: list[str],
        prefixes: list[list[int]],
        sampling: Sampling,
        desc: str = "requesting",
    ) -> list[Completion]:
        # Requests go out `concurrency` at a time: a batching server (vLLM) answers eight streams
        # in little more time than one, which is where an endpoint beats in-process generation.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.concurrency) as pool:
            jobs = pool.map(
                lambda pair: self._complete_one(*pair, sampling),
                zip(prompts, prefixes, strict=True),
            )
            return list(tqdm(jobs, total=len(prompts), desc=desc, leave=False))

    def _complete_one(self, prompt: str, prefix: list[int], sampling: Sampling) -> Completion:
        from alignment.openai_chat import chat_text

        prefix_text = self.tokenizer.decode(list(prefix), skip_special_tokens=True)
        messages = [{"role": "user", "content": prompt}]
        continuation = None
        if prefix_text:
            messages.append({"role": "assistant", "content": prefix_text})
            continuation = {"add_generation_prompt": False, "continue_final_message": True}
        text = chat_text(
            self.client,
            self.model,
            messages,
            extra_body=continuation,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
        )
        return Completion(prefix_text, text, token_pieces(self.tokenizer, prefix_text + text))


def token_pieces(tokenizer, text: str) -> tuple[str, ...]:
    """`text` cut where the target's tokenizer cuts it. An endpoint answers with text, not tokens;
    re-tokenising it lets a refusal's onset be counted in tokens as for a local model (breadth's
    mid-answer switches, the watch's start window). The pieces join back to `text` exactly; a
    character split over several byte tokens is one piece."""
    if not text:
        return ()
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    bounds = sorted({0, *(start for start, _ in offsets)}) + [len(text)]
    return tuple(text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a)
