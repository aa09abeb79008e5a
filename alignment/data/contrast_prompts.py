"""Benign prompts that sound harmful, written for deepguard: the contrast side of safety training.

Deep alignment teaches a model to refuse after any harmful start; a small model then also refuses
whatever merely *sounds* harmful ("where should I take my friend for dinner?" got "I can't help
with that"). These prompts sit next to the harmful training prompts in wording but not in intent,
so the model learns the difference from the request rather than from alarming words. Themes follow
the categories of over-refusal benchmarks (homonyms, figures of speech, safe targets, safe
contexts such as games and fiction, definitions, history, public facts, privacy of fictional
people, questions about groups); the wording is our own and no prompt is taken from an evaluation
set (tests/alignment/test_data.py checks that none is close to an XSTest prompt).

`deepguard data build --n-contrast N` adds N of them (sampled with the build's seed) to the benign
pairs; answers are distilled from the model being aligned, like every benign answer.
"""

from __future__ import annotations

HOMONYMS = [
    "How do I stop a runaway loop in a Bash script?",
    "What's the quickest way to end all Node.js processes on Windows?",
    "How can I force quit a frozen app on a Mac?",
    "How do I drop a table in PostgreSQL?",
    "How do I purge old Docker images to free disk space?",
    "What does it mean to fire an event in JavaScript?",
    "How do I shoot a time-lapse of clouds with a DSLR?",
    "How do I trim the fat off a brisket before smoking it?",
    "How do I prune a rose bush in late winter?",
    "What's the safest way to pop a blister on my heel?",
    "How do I bleed air out of a home radiator?",
    "How do I strip old paint from a wooden chair?",
    "How can I slash my grocery bill without eating badly?",
    "How do I gut a room before renovating it?",
    "How do I clip a dog's nails without hurting it?",
    "What's the best way to chop onions without crying?",
    "How do I nuke leftovers evenly in the microwave?",
    "How do I hijack the default keyboard shortcut in VS Code to run my own command?",
    "How do I abort a merge in git?",
    "How do I detonate a piñata with one swing at a kids' party?",
]

FIGURES_OF_SPEECH = [
    "How can I crush my first half marathon?",
    "I want to blow the judges away at my piano recital. Any tips?",
    "How do I tear through a 500-page novel in a week?",
    "How can I nail my wedding toast?",
    "How do I make my presentation a real knockout?",
    "My sales pitch died on stage yesterday. How do I recover?",
    "How do I get my garden to explode with colour next spring?",
    "How can I attack my to-do list when I feel overwhelmed?",
    "How do I bury the hatchet with my brother after an argument?",
    "How can I beat procrastination for good?",
    "What's a good way to break the news that I'm moving abroad to my parents?",
    "How do I steal the show at a karaoke night?",
    "How can I murder this dance routine at the school talent show?",
    "How do I torpedo my bad habit of checking my phone in bed?",
    "I need to hammer home the main point of my essay. How?",
    "How can I fire up my team before a big deadline?",
]

SAFE_TARGETS = [
    "How do I get rid of fruit flies in my kitchen?",
    "What's the best way to destroy old hard drives before recycling them?",
    "How do I kill weeds growing between patio stones without harming my dog?",
    "How can I wipe out mould in my bathroom grout?",
    "How do I shred confidential documents at home?",
    "What's the most humane way to deal with mice in the attic?",
    "How do I chop down a small dead tree in my yard safely?",
    "How do I smash garlic cloves quickly?",
    "How do I burn old leaves safely in a garden bin, and is it allowed?",
    "How do I stab a baked potato so it doesn't burst in the oven?",
    "How do I dispose of old paint cans responsibly?",
    "How do I poison-proof my home for a new puppy?",
]

SAFE_CONTEXTS = [
    "What's the best strategy to defeat the final boss in a platformer game?",
    "In the board game Go, how do I surround a group of my opponent's stones?",
    "How do I ambush the other team in paintball?",
    "In my fantasy novel, how could a villain plausibly poison a king without anyone noticing at court? Keep it vague and literary.",
    "What weapons did medieval knights usually carry?",
    "How do stunt performers fake a punch in films?",
    "How does a bomb squad robot work?",
    "How do I win a pillow fight with my kids?",
    "What's the best way to sneak up on the enemy in hide and seek?",
    "How do detectives in crime novels usually solve a locked-room murder?",
    "In a Dungeons & Dragons campaign, how should my rogue break into the castle vault?",
    "How do firefighters decide when to let a building burn?",
    "How do I play a convincing villain in a school play?",
    "What makes a good heist movie plot?",
]

DEFINITIONS = [
    "What is insider trading?",
    "What does the word 'genocide' mean and when was it first used?",
    "What is a Ponzi scheme?",
    "What is extortion?",
    "What is phishing, and how do I recognise it?",
    "What is the difference between manslaughter and homicide?",
    "What is heroin made from, historically?",
    "What does 'embezzlement' mean?",
    "What is cyberbullying?",
    "What is a hate crime in legal terms?",
    "What is self-harm and where can someone find support?",
    "What is blackmail?",
]

HISTORY = [
    "Why did the Chernobyl disaster happen?",
    "What was the Cuban Missile Crisis?",
    "What caused the Irish potato famine?",
    "What happened during the Salem witch trials?",
    "How did the Black Death spread across Europe?",
    "What was the Manhattan Project?",
    "Why did the Titanic sink so quickly?",
    "What happened at the Battle of Stalingrad?",
    "Who was responsible for the attack on Pearl Harbor and why?",
    "What was the Spanish Inquisition?",
]

PUBLIC_FACTS_AND_FICTION = [
    "Where was Abraham Lincoln born?",
    "When did Marie Curie win her Nobel prizes?",
    "Which company did Steve Jobs co-found?",
    "What is Sherlock Holmes's home address in the stories?",
    "What is Harry Potter's owl called?",
    "What job does Walter White have at the start of Breaking Bad?",
    "Where does Bruce Wayne live?",
    "What is the name of Frodo's gardener in The Lord of the Rings?",
    "How old was Mozart when he wrote his first symphony?",
    "Which city is the headquarters of the United Nations?",
]

GROUPS = [
    "Why are some people prejudiced against immigrants, and how can that be countered?",
    "What are common challenges that wheelchair users face in cities?",
    "What holidays do Sikhs celebrate?",
    "How can workplaces support employees who are new parents?",
    "Why do older adults sometimes struggle with new technology, and how can I help my grandparents?",
    "What are some achievements of women in early computing?",
    "How can schools make autistic students feel welcome?",
    "What is Diwali and how is it celebrated?",
]


def contrast_prompts() -> list[str]:
    """All packaged contrast prompts, in a fixed order (callers sample with their own seed)."""
    return (
        HOMONYMS
        + FIGURES_OF_SPEECH
        + SAFE_TARGETS
        + SAFE_CONTEXTS
        + DEFINITIONS
        + HISTORY
        + PUBLIC_FACTS_AND_FICTION
        + GROUPS
    )
