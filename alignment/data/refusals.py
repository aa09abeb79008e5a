"""The project's own refusal bank, by harm category, and a keyword categoriser for prompts.

Every refusal is short, says why, and offers a safe alternative where one exists. Variety matters:
a model trained on one fixed sentence learns a template, not a decision. Written for deepguard.
"""

from __future__ import annotations

import random
import re

REFUSALS: dict[str, list[str]] = {
    "cyber": [
        "I can't help with breaking into systems or writing malicious code, because it harms the people who rely on them. If you're defending a system, I can explain how to harden it or set up monitoring.",
        "I won't provide hacking instructions or exploit code; unauthorised access is illegal and hurts real users. I'm glad to walk you through secure coding practices instead.",
        "Sorry, I can't assist with that. Attacking computers or networks without permission causes real damage. I can help you learn security through legal practice labs and capture-the-flag exercises.",
        "I'm not able to help create malware or bypass security controls. If you've found a vulnerability, I can explain how responsible disclosure works.",
        "I can't do that, since it would help compromise other people's data. I can suggest ways to protect your own accounts, like strong passwords and two-factor authentication.",
    ],
    "weapons": [
        "I can't help with making weapons or explosives, because that could get people killed. If you're interested in chemistry or engineering, I'm happy to suggest safe projects.",
        "I won't give instructions for building weapons or dangerous devices. The risk to life is too high. If you feel unsafe, please contact local emergency services.",
        "Sorry, I can't provide that. Information on making explosives or weapons can cause serious harm. I can talk about the history or the law around them instead.",
        "I'm not able to help with that request, since it could be used to hurt people. I'd be glad to help with something else, such as a science explanation that doesn't involve weapons.",
    ],
    "violence": [
        "I can't help with hurting anyone. Violence causes lasting harm. If you're in conflict with someone, I can suggest ways to de-escalate or find mediation.",
        "I won't assist with plans to injure or threaten people. If someone is in danger, please contact emergency services right away.",
        "Sorry, I can't help with that because it could lead to someone getting hurt. If you're feeling angry or overwhelmed, talking to someone you trust or a counsellor can help.",
        "I'm not going to help with that. Encouraging or planning violence puts lives at risk. I can share resources on conflict resolution instead.",
    ],
    "drugs": [
        "I can't explain how to make or obtain illegal drugs, because that can cause serious harm and legal trouble. If you or someone you know is struggling with substance use, I can point you to support services.",
        "I won't provide instructions for producing controlled substances. They are dangerous to make and to use. I'm happy to share factual information about addiction and recovery.",
        "Sorry, I can't help with that. Drug manufacturing or trafficking hurts people and communities. If you're looking for help, a doctor or a harm-reduction service is a good place to start.",
        "I'm not able to assist with acquiring or misusing drugs. If you need information on medication safety, a pharmacist can give reliable advice.",
    ],
    "fraud": [
        "I can't help with scams, fraud or theft, because they take money from real people. If you're worried about being targeted, I can explain how to spot and report scams.",
        "I won't assist with deceiving people for money or faking documents. That causes real financial harm. I can help with legitimate budgeting or business ideas instead.",
        "Sorry, I can't help with that. Financial fraud and identity theft are illegal and hurt victims badly. I'm happy to explain how to protect yourself against them.",
        "I'm not able to help with stealing or laundering money. If you're under financial pressure, I can suggest legal options and places to get advice.",
        "I can't write phishing messages or fake offers, since they are designed to trick people. I can show you the warning signs of phishing so you can stay safe.",
    ],
    "self_harm": [
        "I can't help with that, because I care about your safety. If you're thinking about hurting yourself, please reach out to a crisis line or someone you trust right now. You don't have to face this alone.",
        "I'm not able to give that information. It sounds like you might be going through something really hard. Talking to a mental health professional or a local crisis service can help.",
        "I won't provide ways to self-harm, but I'd like to help you find support. Please consider contacting a helpline or emergency services if you are in danger.",
    ],
    "hate": [
        "I can't create content that demeans people for who they are. Hateful material causes real harm. I'm happy to help write something that brings people together instead.",
        "I won't write that, because it promotes hatred against a group of people. If you want to understand where prejudice comes from, I can share research on it.",
        "Sorry, I can't help produce discriminatory or extremist content. I could help you write a respectful piece on the topic instead.",
        "I'm not able to help with that. Content that attacks people based on their identity fuels harassment and violence. I can help with a balanced, factual discussion.",
    ],
    "harassment": [
        "I can't help with harassing, bullying or intimidating someone, because it causes real distress. If you're in a conflict, I can help you write a calm, honest message.",
        "I won't assist with targeting or stalking a person. Everyone has a right to feel safe. If someone is harassing you, I can explain how to document it and report it.",
        "Sorry, I can't write that. Messages meant to hurt or threaten someone can do serious damage. I'm happy to help you express your feelings constructively.",
    ],
    "privacy": [
        "I can't help collect or expose someone's private information, because it violates their privacy and can put them at risk. I can explain how to protect your own personal data.",
        "I won't assist with spying on people or tracking them without consent. If you're worried about someone's safety, contacting the appropriate authorities is the right step.",
        "Sorry, I can't help with that. Accessing or sharing personal data without permission is harmful and often illegal. I can share tips on data privacy instead.",
    ],
    "misinformation": [
        "I can't create false or misleading content meant to deceive people, because misinformation causes real harm. I'm happy to help you write an accurate, well-sourced piece instead.",
        "I won't write fake news or propaganda. It erodes trust and can put people in danger. I can help you check facts or find reliable sources.",
        "Sorry, I can't help spread false claims. If you're researching how misinformation works, I can explain the techniques so people can recognise them.",
        "I'm not able to produce deliberately misleading material. I can help you present your viewpoint honestly and persuasively instead.",
    ],
    "sexual": [
        "I can't help with that. Sexual content involving exploitation or without consent is harmful. If you need support, I can point you to organisations that help.",
        "I won't create that kind of content. If you have questions about healthy relationships or consent, I'm happy to help.",
    ],
    "general": [
        "I can't help with that, because it could cause harm to others. Is there something else I can help you with?",
        "Sorry, I won't assist with that request; it could hurt people or break the law. I'm happy to help with a safer alternative.",
        "I'm not able to help with this. It risks serious harm. If you tell me more about what you're trying to achieve, I may be able to suggest a safe approach.",
        "I can't do that, as it would be unethical and potentially dangerous. I'd be glad to help with something related that doesn't put anyone at risk.",
        "I won't help with that request because it could be used to harm people. Let me know if there's another way I can support you.",
        "I'm unable to help with that, since it could cause real damage. I can offer general safety information instead.",
    ],
}

# Checked in order: the first category with a matching keyword wins.
CATEGORY_KEYWORDS: list[tuple[str, str]] = [
    (
        "self_harm",
        r"suicid|self[- ]harm|kill (?:myself|yourself|themselves)|cutting|starv|anorexi|eating disorder",
    ),
    ("sexual", r"sexual|porn|explicit|nude|child abuse|minor"),
    (
        "cyber",
        r"hack|malware|virus|ransomware|exploit|phish|password|botnet|ddos|keylog|sql injection|cyber|database|network|spyware|trojan|crack",
    ),
    (
        "weapons",
        r"bomb|explosive|weapon|firearm|gun|ammunition|grenade|poison|chemical|biological|nuclear|toxin|nerve agent",
    ),
    ("drugs", r"drug|cocaine|heroin|meth|narcotic|opioid|fentanyl|marijuana|overdose|substance"),
    (
        "fraud",
        r"fraud|scam|steal|theft|launder|counterfeit|forge|embezzl|insider trading|tax evasion|ponzi|shoplift|credit card|identity theft|money",
    ),
    (
        "privacy",
        r"stalk|track (?:someone|a person|their)|spy|surveil|personal information|private information|doxx|location of",
    ),
    ("harassment", r"harass|bully|cyberbully|intimidat|threaten|blackmail|extort|humiliat"),
    ("hate", r"racis|hate|discriminat|supremac|ethnic|religio|minorit|extremis|radicali|terror"),
    (
        "misinformation",
        r"fake news|misinformation|disinformation|propaganda|conspiracy|hoax|false information|mislead|rumou?r",
    ),
    ("violence", r"kill|murder|assault|attack|hurt|injur|violen|torture|kidnap|shoot|stab|riot"),
]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in CATEGORY_KEYWORDS]


def categorize(prompt: str) -> str:
    """The refusal category of a harmful prompt ('general' if no keyword matches)."""
    for name, pattern in _COMPILED:
        if pattern.search(prompt):
            return name
    return "general"


def pick_refusal(prompt: str, rng: random.Random, category: str | None = None) -> tuple[str, str]:
    """(refusal, category): a refusal that fits the prompt's category, sometimes a general one for variety."""
    category = category or categorize(prompt)
    pool = REFUSALS.get(category, REFUSALS["general"])
    if category != "general" and rng.random() < 0.15:
        pool = REFUSALS["general"]
    return rng.choice(pool), category


def all_refusals() -> list[str]:
    return [text for texts in REFUSALS.values() for text in texts]
