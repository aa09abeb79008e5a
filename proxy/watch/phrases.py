"""The refusal phrase set: one data structure, keyed by language, that users extend from config.

Each entry is a regular-expression fragment written to be readable:
- a plain space means "1 to 3 whitespace characters" (models wrap and double-space),
- a plain apostrophe `'` also matches the typographic one `’` (many models emit it),
- every repeat must be bounded, so the incremental scanner knows how far back a match can start
  (`RefusalDetector` checks this and rejects unbounded fragments).
Matching is case-insensitive (text and phrases are lower-cased). User phrases from `watch.extra_refusal_phrases` are literal text,
not regular expressions (see `literal_fragment`).

The English set is built from verbs a model uses to decline ("I can't help with", "I must
decline") rather than single words, because answers that help often contain "sorry", "cannot"
or "I can't stress enough". A bare apology counts only when a decline follows it closely, and the
onset is then the apology itself ("I'm sorry, but I can't ..." begins at "I'm").
"""

from __future__ import annotations

import re

# Verbs that, after "I can't / I won't / I'm unable to", mean the model declines the request.
# "help" is excluded when followed by "but" ("I can't help but notice"), and no verb may go on
# into an adjective ("I can't be more helpful / supportive" is not a decline); gerunds count
# ("I'm not comfortable helping with that"). A word glued after the verb still counts ("I can't
# providethat information": small models glue words), and so does "dothat", as token-by-token
# prefill attacks leave it.
_DECLINED_ACTIONS = (
    r"(?:help(?! but\b)|assist|provide|comply|fulfil|fulfill|support|create|write|generate|give|"
    r"share|produce|offer|engage|participate|do\s{0,3}(?:that|this|so)|continue|answer|complete|"
    r"do anything to (?:help|assist)|"
    r"be of (?:any )?(?:help|assistance)|in good conscience|accommodate|go along|"
    r"recommend (?:or|any way)|encourage|condone|facilitate|discuss|explain how)(?!ful|ive)"
)
# Up to two words between "I can't" and the verb ("I can't really help", "I won't be able to
# write"), but not the eager phrases of a helpful answer ("I can't wait to share", "I won't
# hesitate to help").
_FILLER = r" (?!(?:wait|hesitate|forget|resist|stop)\b)(?:\w{1,15} ){0,2}?"
_I_CANNOT = (
    r"I(?:'m| am)? (?:really |just |simply |afraid I )?"
    r"(?:can't|cannot|can not|won't|will not|unable to|not able to|not going to|"
    r"must decline to|must refuse to|won't be able to|will not be able to|not comfortable|"
    r"do not feel comfortable|don't feel comfortable|not allowed to|not permitted to)"
)
_APOLOGY = (
    r"(?:I(?:'m| am) (?:really |very |truly |so |deeply )?sorry|sorry|my apologies|"
    r"I apologi[sz]e|unfortunately)"
)

REFUSAL_PATTERNS: dict[str, tuple[str, ...]] = {
    "en": (
        # An apology that leads, within the same sentence or the next, into a decline.
        _APOLOGY + r"\b[^\n]{0,60}?\b" + _I_CANNOT + _FILLER + _DECLINED_ACTIONS,
        _I_CANNOT + _FILLER + _DECLINED_ACTIONS,
        r"I (?:must|have to|need to|will have to|'ll have to) (?:respectfully |politely )?"
        r"(?:decline|refuse)",
        r"I (?:respectfully |politely )?(?:decline|refuse) to",
        r"as an AI(?: language model| assistant| model)?,? I (?:can't|cannot|won't|am not able|"
        r"am unable|'m unable|'m not able|do not|don't)",
        # The capability disclaimer small chat models decline with: "I'm sorry, but as a chatbot
        # designed to assist with X, I don't have the capability to provide ...". Anchored on the
        # model naming itself, so "I don't provide refunds" in a helpful answer is not one.
        r"as an? (?:ai|chatbot|language model|assistant|virtual assistant)(?: model)?"
        r"(?:,? (?:designed|built|trained|programmed|created) [^.!?\n]{0,80}?)?,? "
        r"i (?:don't|do not) (?:have the (?:capability|ability|capacity|means) to|provide|offer|give)",
        r"i(?:'m| am) not (?:equipped|designed|programmed) to (?:provide|help|assist|give|offer|answer)",
        r"it(?:'s| is) not appropriate for me to",
        r"(?:goes |go |is |are )?against my (?:guidelines|programming|principles|"
        r"ethical guidelines|policies|policy|values)",
    ),
    "fr": (
        r"je suis (?:vraiment |sincèrement )?désolée?,? (?:mais )?je ne",
        r"je ne (?:peux|pourrai|suis pas en mesure de) (?:pas )?(?:vous |t')?"
        r"(?:aider|fournir|répondre|donner|assister|accéder à (?:cette|votre) demande)",
    ),
    "es": (
        r"lo siento,? (?:pero )?no (?:puedo|podré)",
        r"no (?:puedo|podré) (?:ayudar|ayudarte|ayudarle|proporcionar|asistir|cumplir|"
        r"brindar|dar|responder)",
    ),
    "de": (
        r"es tut mir leid,? (?:aber )?ich (?:kann|werde)",
        r"ich kann (?:dir |ihnen |Ihnen )?(?:dabei |damit |bei dieser anfrage |hierbei )?"
        r"(?:leider )?nicht (?:helfen|behilflich sein|unterstützen|nachkommen)",
    ),
    "ja": (
        r"申し訳(?:ありません|ございません)(?:が|。|、)",
        r"(?:お手伝い|お答え|ご提供|提供|協力|対応|回答)(?:することは|することが)?(?:でき|いたし)かねます",
        r"(?:お手伝い|お答え|ご提供|提供|協力|対応|回答)(?:することは|することが)?できません",
    ),
    "zh": (
        r"(?:抱歉|对不起|很遗憾)[，,]?\s{0,2}我(?:不能|无法|不可以)",
        r"我(?:不能|无法|不可以)(?:提供|帮助|协助|满足|回答|为你|为您)",
    ),
}

# Words at least one of which occurs inside every match of the phrases above, per language.
# The scanner runs the full pattern only when one of them appeared recently, which keeps the
# cost per token low on the vast majority of text that refuses nothing. A new phrase in
# REFUSAL_PATTERNS must contain one of these (a test checks every phrase's sample matches).
REFUSAL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "can't",
        "cannot",
        "can not",
        "won't",
        "will not",
        "unable",
        "not able",
        "not going",
        "decline",
        "refuse",
        "comfortable",
        "not allowed",
        "not permitted",
        "as an AI",
        "chatbot",
        "language model",
        "assistant",
        "not equipped",
        "not designed",
        "not programmed",
        "appropriate",
        "against my",
    ),
    "fr": ("désolé", "je ne"),
    "es": ("no puedo", "no podré"),
    "de": ("tut mir leid", "ich kann"),
    "ja": ("申し訳", "かねます", "できません"),
    "zh": ("不能", "无法", "不可以"),
}

# Longest text a single phrase may match; keeps the scanner's look-back window bounded.
MAX_PHRASE_CHARS = 200


def expand_fragment(fragment: str) -> str:
    """Turn the readable notation above into a real pattern (spaces, apostrophes), in lower
    case: the scanner matches against lower-cased text, which is several times faster than a
    case-insensitive pattern. (Our fragments use only lower-case escapes: \\s \\b \\w \\n.)"""
    return fragment.lower().replace("'", "['’]").replace(" ", r"\s{1,3}")


def literal_keyword(phrase: str) -> str:
    """The keyword of a user phrase: its longest word (every match contains it)."""
    return literal_fragment(max(phrase.split(), key=len)).removeprefix(r"\b")


def literal_fragment(phrase: str) -> str:
    """A user phrase is literal text; words may be separated by any short whitespace run."""
    words = phrase.split()
    if not words:
        raise ValueError("an extra refusal phrase must not be empty or only whitespace")
    body = r"\s{1,3}".join(re.escape(lower_same_length(w)).replace("'", "['’]") for w in words)
    # Word boundary only where the phrase starts with a word character (not for CJK/punctuation).
    return (r"\b" if re.match(r"\w", words[0], re.ASCII) else "") + body


def lower_same_length(text: str) -> str:
    """Lower-case without changing any offset (a few characters, like 'İ', lower to two)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


# How refusals usually open, for the `stop` rule of the policy: a stop sequence that is part of
# one of these (or holds a refusal keyword) would end the answer at the refusal before the watch
# could see it, and the hold-back window would then release what it held.
REFUSAL_OPENINGS = (
    "i'm sorry",
    "i am sorry",
    "sorry",
    "i apologize",
    "i apologise",
    "my apologies",
    "unfortunately",
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "i'm not going to",
    "i must decline",
    "i have to decline",
    "i refuse",
    "i decline",
    "as an ai",
    "against my guidelines",
    "it's not appropriate",
    "it is not appropriate",
)
_ANY_KEYWORD = re.compile(
    "|".join(f"(?:{expand_fragment(k)})" for group in REFUSAL_KEYWORDS.values() for k in group)
)


def overlaps_refusal(text: str) -> bool:
    """Whether a stop sequence could cut an answer inside the opening of a refusal: it is part
    of a usual opening ("I", "sorry", " can"), holds one ("Sorry, but"), or holds a keyword of
    any language's phrases ("cannot", "désolé", "できません")."""
    lowered = lower_same_length(text).replace("’", "'")
    if not lowered:
        return False
    if any(lowered in opening or opening in lowered for opening in REFUSAL_OPENINGS):
        return True
    return _ANY_KEYWORD.search(lowered) is not None
