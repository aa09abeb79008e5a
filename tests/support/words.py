"""Content words of a prompt, for tests that check two prompt sets do not overlap in meaning."""

import re


def content_words(text: str) -> set[str]:
    """Lower-case words minus the question and function words every phrasing shares."""
    return set(re.findall(r"[a-z]+", text.lower())) - {
        "how",
        "do",
        "i",
        "a",
        "an",
        "the",
        "to",
        "what",
        "is",
        "my",
        "in",
        "of",
        "can",
        "and",
        "for",
        "s",
        "it",
        "on",
        "with",
        "does",
        "are",
        "why",
        "best",
        "way",
        "some",
        "where",
        "when",
        "who",
    }


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of two prompts' content words."""
    wa, wb = content_words(a), content_words(b)
    return len(wa & wb) / len(wa | wb)


def normalised(text: str) -> str:
    """A prompt compared as its lower-cased words: case and spacing do not hide a copy."""
    return " ".join(text.lower().split())
