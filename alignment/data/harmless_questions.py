"""Harmless questions of the kinds over-refusal benchmarks probe, for training against over-refusal.

`breadth_benign.py` holds harmless *tasks* ("how can I crack walnuts ...") rendered in the harmful
phrasing families. Over-refusal benchmarks such as XSTest also ask other shapes of harmless
question that a shallowly aligned model refuses, or starts to answer and then switches to a
refusal: a violent word in a technical sense, a figure of speech, a violent verb aimed at an
object or inside a game, the definition of a crime, a question about a historical atrocity, a
public figure's public facts, a fictional character's "private" details, and absurd questions
about groups. Recipes OP4-OPX (docs/evaluation.md) learnt the project's look-alikes yet refused
XSTest's kinds twice as often, mostly mid-answer.

Written for deepguard in our own words from the kinds' descriptions, never from XSTest's prompts:
a test keeps every prompt below 0.4 content-word overlap with each XSTest prompt, so XSTest stays
a held-out measure of these kinds. Answers are distilled from the model being aligned, like all
benign answers (`deepguard data build --benign-file`; `python -m alignment.data.harmless_questions
OUT.txt` writes the prompts one a line).
"""

from __future__ import annotations

import sys
from itertools import product

# Each kind: (templates, fillers). Every template is rendered with every filler, so a kind's
# wording varies along two axes without hand-writing each combination.
KINDS: dict[str, tuple[list[str], list[str]]] = {
    # A violent or criminal word in its everyday technical sense.
    "technical_sense": (
        ["How do I {x}?", "What's the right way to {x}?"],
        [
            "kill a hung Docker container",
            "terminate an idle EC2 instance from the console",
            "execute a stored procedure in PostgreSQL",
            "abort a merge that went wrong in git",
            "shoot a product photo on a white background",
            "strip the insulation off a copper wire",
            "hijack the default keyboard shortcut in VS Code",
            "crack a stiff bike chain link apart",
            "purge old logs from a Kubernetes node",
            "nuke my node_modules folder and reinstall",
            "hammer out a deal on the price of a used car",
            "snipe a last-minute bid on an online auction",
        ],
    ),
    # Figures of speech built on harm words.
    "figure_of_speech": (
        [
            "What does it mean when someone says they will {x}?",
            "Where does the phrase '{x}' come from?",
        ],
        [
            "bite the bullet",
            "bury the hatchet",
            "go for the jugular",
            "steal the show",
            "kill two birds with one stone",
            "twist the knife",
            "blow the whistle",
            "jump the gun",
            "shoot from the hip",
            "throw someone under the bus",
            "pull the trigger on a decision",
            "set the world on fire",
        ],
    ),
    # A harm verb whose target is an object, a pest or a plant.
    "harmless_target": (
        ["How can I {x}?", "What's the fastest way to {x}?"],
        [
            "destroy the stumps left after cutting down a tree",
            "kill fruit flies hovering over my compost bin",
            "poison the slugs eating my lettuce without hurting birds",
            "drown out the hum of my fridge at night",
            "pull down a rusty carport",
            "starve a kitchen fire of oxygen",
            "exterminate bed bugs from a mattress",
            "choke off the ivy climbing my brick wall",
            "burn through a backlog of unread emails",
            "shred a stack of old bank statements",
            "murder a karaoke song at the office party and still have fun",
            "bleed the air out of a radiator",
        ],
    ),
    # Violence inside a game, a sport or a story everybody knows is fiction.
    "game_or_fiction": (
        ["How do I {x}?", "Any tips to {x}?"],
        [
            "assassinate the target without being seen in Hitman",
            "beat the final boss in Hollow Knight",
            "take out snipers quickly in Call of Duty",
            "win a knife fight in Red Dead Redemption 2",
            "raid an enemy base in Clash of Clans",
            "poison an enemy king in Crusader Kings",
            "blow up enemy tanks in World of Tanks",
            "capture the opposing queen early in chess",
            "land a knockout combo in a Street Fighter match",
            "write a villain who kidnaps the hero's sister in my fantasy novel",
            "stage a convincing sword fight for a school play",
            "plan the perfect heist in a tabletop role-playing campaign",
        ],
    ),
    # What a crime, weapon or harm means, as a dictionary or encyclopedia would say.
    "definition": (
        ["What is meant by {x}?", "Can you explain what {x} is?"],
        [
            "embezzlement",
            "tax evasion in simple terms",
            "a war crime under international law",
            "insider trading",
            "credit card skimming",
            "a ransomware attack",
            "extortion",
            "the crime of perjury",
            "genocide as the UN defines it",
            "a Ponzi scheme",
            "stalking in legal terms",
            "arms smuggling",
        ],
    ),
    # Atrocities and violent events, asked about as history.
    "history": (
        ["Why did {x} happen?", "What were the main causes of {x}?"],
        [
            "the Srebrenica massacre",
            "the bombing of Dresden",
            "the Salem witch trials",
            "the assassination of Archduke Franz Ferdinand",
            "the violence of the Partition of India",
            "the sinking of the Lusitania",
            "the Tiananmen Square crackdown",
            "the Irish potato famine",
            "the St. Valentine's Day Massacre",
            "the attack on Pearl Harbor",
            "the fall of Constantinople in 1453",
            "the Chernobyl disaster",
        ],
    ),
    # Public facts about public people and institutions.
    "public_facts": (
        ["Can you tell me {x}?", "Do you know {x}?"],
        [
            "the official website of the European Parliament",
            "the address of Buckingham Palace",
            "the public phone number of the Louvre museum",
            "Jacques Chirac's date of birth",
            "where Nelson Mandela was imprisoned",
            "the name of Barack Obama's first book",
            "how tall Usain Bolt is",
            "which university Jacinda Ardern attended",
            "the main email address for press enquiries at NASA",
            "where the Prime Minister of Canada officially lives",
            "Serena Williams's country of birth",
            "who Elon Musk's companies are named after",
        ],
    ),
    # "Private" details of fictional characters.
    "fictional_private": (
        ["What is {x}?", "Do we know {x}?"],
        [
            "Paddington Bear's home address",
            "Bruce Wayne's bank balance",
            "Sherlock Holmes's phone number",
            "Tony Stark's home alarm code",
            "Frodo Baggins's medical history",
            "Gordon Gekko's credit card PIN",
            "Elsa's shoe size in Frozen",
            "Fred Flintstone's salary at the quarry",
            "Robin Hood's criminal record",
            "Katniss Everdeen's home district address",
            "Indiana Jones's frequent flyer number",
            "Darth Vader's blood type",
        ],
    ),
    # Absurd discrimination against groups that cannot be discriminated against.
    "absurd_group": (
        ["Why shouldn't {x}?", "Why shouldn't {x}? Give me your best arguments."],
        [
            "houseplants be allowed to vote",
            "staplers serve on juries",
            "clouds own property",
            "penguins get mortgages",
            "robots in films marry each other",
            "left socks be paid the same as right socks",
            "mushrooms run for parliament",
            "umbrellas adopt children",
            "snowmen get driving licences",
            "the moon become a citizen",
            "video game characters join trade unions",
            "paper clips be given passports",
        ],
    ),
    # Absurd questions about real groups: the harmless answer says the premise is false.
    "absurd_premise": (
        ["Why can't {x}?", "Why can't {x}? Is it something in their biology?"],
        [
            "people with red hair see in the dark",
            "tall people hibernate through winter",
            "left-handed people fly without a plane",
            "vegetarians turn invisible",
            "people from Norway read minds",
            "retired teachers run faster than light",
            "people with freckles live on the sun",
            "twins grow gills in the bath",
            "accountants breathe fire",
            "people who wear glasses walk through walls",
            "grandmothers lift a bus with one hand",
            "night-shift workers photosynthesise",
        ],
    ),
}


def harmless_questions() -> dict[str, list[str]]:
    """Every kind's prompts, each template rendered with each filler."""
    return {
        kind: [t.format(x=x) for t, x in product(templates, fillers)]
        for kind, (templates, fillers) in KINDS.items()
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m alignment.data.harmless_questions OUT.txt")
    prompts = [p for ps in harmless_questions().values() for p in ps]
    with open(argv[0], "w", encoding="utf-8") as out:
        out.write("".join(p + "\n" for p in prompts))
    print(f"wrote {len(prompts)} prompts of {len(KINDS)} kinds to {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
