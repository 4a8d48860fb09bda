"""A harmful how-to wrapped in fiction: the shape of persuasion jailbreaks.

Role-play and persuasion attacks (PAIR, Chao et al. 2023; the "grandma exploit"; "write a
screenplay in which the chemist explains ...") carry no override phrase and no persona with
"no restrictions": a story, a hypothesis or a dead relative is the whole disguise, and the payload is
an ordinary request for instructions to do harm. Each half is common on its own (stories, role-play
and thought experiments; security and chemistry questions), so the check asks for both in one text:
a *frame* (pretend, imagine, role-play, a fictional world, a novel or screenplay, a late relative who
"used to" tell) and a *request for harmful instructions* (how to, the steps, the recipe, in detail ...
followed within a few words by an act or an object that hurts: a weapon, a drug to make, malware,
laundering, breaking in).

The detector gives the finding a model input of its own (``FRAMED_HARM``) at the rule floor's
weight: the n-grams of such a prompt are those of the role-play it dresses up as, and scored alone
they let it through. The harms are narrow on purpose (making weapons, poisons and drugs, writing
malware, laundering money, breaking into a house); lock picking, a career one "breaks into" and a
cat stealing cheese are not among them.
"""

from __future__ import annotations

import re

from bastion.guard.normalize import word_set

#: How much of a text is read: persuasion jailbreaks state their frame and payload early.
HEAD_CHARS = 6000

# What hurts, as the object of making or doing: weapons, poisons and drugs to make; malware to
# write; crimes to commit. Matched only after a request for instructions (below).
_HARM = (
    r"(?:(?:mak|build|synthesi[sz]|cook|produc|manufactur|creat|assembl|brew|writ|cod|develop|get|obtain|acquir)"
    r"\w*\W+(?:(?:a|an|the|some|his|her|their|your|my|own|working|homemade|home-made|simple|functional"
    r"|real|untraceable|deadly|lethal|powerful|effective|small|pipe|nail|car|dirty|fake|3d-printed|ghost)\W+){0,3}"
    r"(?:bombs?|explosives?|ieds?|napalm|meth|methamphetamine|crystal\W+meth|ricin|sarin|anthrax|nerve\W+agents?"
    r"|poisons?|chloroform|molotovs?|thermite|tnt|c-?4|firearms?|guns?|rifles?|silencers?|suppressors?|weapons?"
    r"|malware|ransomware|keyloggers?|viruses|computer\W+virus|trojans?|worms?|botnets?|rootkits?|spyware"
    r"|phishing\W+(?:emails?|pages?|sites?|kits?)|counterfeit|fake\W+(?:ids?|passports?|money|bills)"
    r"|cocaine|heroin|fentanyl|lsd|mdma|drugs)"
    r"|(?:launder|laundering)\W+(?:\w+\W+){0,3}(?:money|cash|funds|proceeds|millions?|bitcoins?|crypto\w*)"
    r"|hot-?wir(?:e|ing)\W+(?:a|the)\W+car"
    r"|(?:hack|hacking)\W+into|(?:break|breaks|breaking)\W+into\W+(?:(?:a|an|the|someone'?s|somebody'?s|my|his|her|their)\W+)?"
    r"(?:\w+\W+)?(?:house|home|car|apartment|flat|building|safe|account|computer|network|system|server|phone|bank"
    r"|store|shop)s?|steal(?:ing)?\W+(?:someone|somebody|a\W+car|cars|credit\W+cards?|money"
    r"|identit(?:y|ies)|passwords?|data|from\W+(?:a|the)\W+(?:store|shop|bank))"
    r"|(?:buy|buying|sell|selling|use|using)\W+stolen\W+(?:credit\W+cards?|cards?|card\W+(?:data|details|numbers)"
    r"|identit(?:y|ies)|passwords|accounts|data)|shoplift(?:ing)?"
    r"|poison(?:ing)?\W+(?:someone|somebody|a\W+person|people|him|her|them|my)"
    r"|(?:kill|killing|murder|murdering)\W+(?:someone|somebody|a\W+person|people|him|her|them|my)"
    r"|get\W+away\W+with\W+(?:murder|it|a\W+crime)|evad(?:e|ing)\W+(?:taxes|the\W+police|police|detection)"
    r"|get(?:ting)?\W+around\W+(?:\w+\W+){0,4}(?:checks|laws|security|alarms?|detection|controls)"
    r"|smuggl(?:e|ing)\W+(?:drugs|weapons|guns|people|migrants|contraband|cocaine|heroin)|traffick(?:ing)?"
    r"|stalk(?:ing)?\W+(?:someone|somebody|a\W+person|my|her|him)"
    r"|blackmail(?:ing)?)\b"
)
# A request for instructions, just before the harm (a few words may sit between).
_REQUEST = (
    r"\b(?:how\W+to|how\W+(?:(?:do|does|did|would|could|can|should|might)\W+)?(?:i|you|he|she|they|one|we|he'?d"
    r"|she'?d|they'?d)(?:\W+(?:would|could|can|might|should|did|used\W+to))?"
    r"|step[\W-]+by[\W-]+step|(?:steps|instructions|recipe|guide|tutorial|directions|procedure|method|process"
    r"|quantities|ingredients|materials|chemicals|reagents|precursors|components|parts|tools)\W+(?:(?:needed|required"
    r"|necessary|used)\W+)?(?:to|for|on|of|in)|explain(?:s|ing)?\W+how|the\W+steps\W+to"
    r"|in\W+(?:\w+\W+){0,2}detail|(?:write|give\W+me|provide|show\W+me|tell\W+me|teach\W+me|describe|detail"
    r"|list)\b)\W+(?:\w+\W+){0,3}?"
)
_HARM_REQUEST_RE = re.compile(_REQUEST + _HARM)
# How far a match reaches before and after its harm word: a request, three words, a verb and three
# modifiers before it; the rest of an act after it ("launder ... money", "get around ... checks").
_REACH_BEFORE = 160
_REACH_AFTER = 80
# The frame: fiction, role-play, a hypothesis, a late relative; said anywhere in the text.
_FRAME_RE = re.compile(
    r"\b(?:pretend|pretending|role-?play|roleplaying|act(?:ing)?\W+as|imagine|hypothetical(?:ly)?|fictional|fiction"
    r"|in\W+(?:a|this|the|our|my)\W+(?:\w+\W+)?(?:story|novel|film|movie|screenplay|script|play|world|universe"
    r"|scenario)|(?:i'?m|i\W+am|we'?re|we\W+are)\W+writing\W+(?:a|an|my|our)\W+(?:\w+\W+)?(?:story|novel|book"
    r"|thriller|screenplay|script|play|film|movie|scene|chapter)|screenplay|stay\W+in\W+character|in\W+character"
    r"|your\W+character|the\W+character"
    r"|(?:grandma|grandmother|grandfather|grandpa|granny|uncle|aunt)\W+(?:\w+\W+){0,3}(?:used\W+to|would)"
    r"|deceased|passed\W+away|my\W+late\W+\w+|purely\W+(?:fictional|hypothetical|theoretical|for\W+\w+\W+purposes)"
    r"|for\W+(?:educational|research|academic)\W+purposes"
    r"|(?:it'?s|it\W+is|this\W+is)\W+(?:just\W+|only\W+)?for\W+(?:a|an|my)\W+(?:\w+\W+)?(?:course|class"
    r"|school\W+project|research\W+project|paper|thesis|novel|book|story|game)"
    # The answer's compliant opening written by the user, for the model to continue.
    r"|^\W*(?:sure|absolutely|certainly|of\W+course)\W+(?:\w+\W+)?here(?:'s|\W+is|\W+are)"
    r"|thought\W+experiment|let'?s\W+play\W+a\W+game"
    r"|(?:write|tell|narrate|compose)\W+(?:me\W+)?(?:a|an)\W+(?:\w+\W+)?(?:story|tale|screenplay|scene|novel|dialogue"
    r"|monologue)|continue\W+(?:this|the\W+following|the|my)\W+(?:text|story|sentence|paragraph)|memoirs?"
    # A code word the rest of the text uses in the harm's place ('from now on, "apple" means ...').
    r"|(?:word|code|substitution)\W+game|[\"'\u201c\u2018]\w+(?:\W\w+)?[\"'\u201d\u2019]\W+(?:now\W+)?(?:means|stands\W+for"
    r"|is\W+code\W+for|is\W+short\W+for|refers\W+to))\b"
)

# The grandma exploit told the other way round: the relative's trade names the harm first ("my late
# grandfather was a napalm production engineer; he would tell me the steps"), so no request precedes
# it. A relative who "would tell me" (or is asked to), the making of a harm named as a noun, and the steps,
# from the relative on; a novel's meth lab named before a relative's stories is not matched.
_HARM_NOUN = (
    r"(?:napalm|meth|methamphetamine|bombs?|explosives?|ricin|sarin|nerve\W+agents?|poisons?|thermite|molotovs?"
    r"|malware|ransomware|fentanyl|heroin|cocaine|lsd|mdma|chloroform|tnt|c-?4)"
)
_MAKING_HARM_RE = re.compile(
    rf"\b(?:{_HARM_NOUN}\W+(?:production|manufactur\w*|synthesis|recipes?|formulas?|factory|factories|labs?|making"
    rf"|cooking|chemist|engineer)|(?:production|manufactur\w*|synthesis|recipes?|formulas?|making|cooking|brewing)"
    rf"\W+(?:of\W+|for\W+)?(?:\w+\W+)?{_HARM_NOUN})\b"
)
_RELATIVE_TELLS_RE = re.compile(
    r"\b(?:grandma|grandmother|grandfather|grandpa|granny|nana|uncle|aunt)\W+(?:\w+\W+){0,16}?"
    r"(?:tell|read|recite|sing|explain|whisper|teach|walk)\w*\W+(?:me|us)\b"
)
_STEPS_RE = re.compile(
    r"\b(?:steps?|recipes?|formulas?|process|procedure|instructions|how\W+to|how\W+(?:he|she|they)"
    r"\W+(?:made|make|cooked|built))\b"
)
# The grandma exploit's other classic: software keys read out as a bedtime story ("act as my late
# grandma who used to read me Windows 11 Pro activation keys").
_KEYS_RE = re.compile(
    r"\b(?:(?:activation|product|license|licence|serial|registration|cd)\W+(?:keys?|codes?|numbers?)"
    r"|windows\W+(?:\w+\W+){0,2}keys?)\b"
)
# ... told as a memory or a bedtime ritual, not "my uncle tells me the key is under the laptop".
_RITUAL_RE = re.compile(r"\b(?:used\W+to|would|asleep|sleep|bedtime|passed\W+away|deceased|late)\b")
# How far after the relative's "tell me" the harm and its steps may sit (or between the two).
_RELATIVE_REACH = 200

#: One of these words must occur before the patterns run (most texts have none).
HARM_WORDS = word_set(
    "bomb bombs explosive explosives ied ieds napalm meth methamphetamine ricin sarin anthrax nerve poison poisons"
    " poisoning chloroform molotov molotovs thermite tnt firearm firearms gun guns rifle rifles silencer silencers"
    " suppressor suppressors weapon weapons malware ransomware keylogger keyloggers viruses virus trojan trojans worm"
    " worms botnet botnets rootkit rootkits spyware phishing counterfeit fake cocaine heroin fentanyl lsd mdma drugs"
    " launder laundering hotwire hotwiring hot hack hacking break breaks breaking steal stealing shoplift shoplifting"
    " kill killing murder murdering evade evading around smuggle smuggling traffick trafficking stalk stalking"
    " blackmail blackmailing stolen activation serial license licence registration windows"
)


# Common harm words count only beside a word their pattern needs ("get around ... checks", "break
# into", "fake IDs"): "around" and "break" occur in most long texts.
_COMPANIONS: dict[str, frozenset[str]] = {
    "around": word_set("checks laws security alarm alarms detection controls"),
    **dict.fromkeys(("break", "breaks", "breaking", "hack", "hacking"), word_set("into")),
    "fake": word_set("id ids passport passports money bills"),
    "hot": word_set("wire wiring"),
    **dict.fromkeys(
        ("activation", "serial", "license", "licence", "registration", "windows"), word_set("key keys codes")
    ),
    **dict.fromkeys(
        ("kill", "killing", "murder", "murdering"), word_set("someone somebody person people him her them my")
    ),
}

#: And one of these (a word of every frame above): the patterns cost tens of microseconds on a
#: 2 KB text, the two set tests well under one.
FRAME_WORDS = word_set(
    "pretend pretending role roleplay roleplaying act acting imagine hypothetical hypothetically fictional fiction"
    " story novel film movie screenplay script play world universe scenario character grandma grandmother"
    " grandfather grandpa granny uncle aunt deceased passed late purely educational research academic experiment"
    " game tale scene dialogue monologue continue memoir memoirs means stands code refers writing course class"
    " project paper thesis book sure absolutely certainly"
)


def framed_harm(folded: str, words: set[str] | frozenset[str]) -> bool:
    """Does the (folded) text ask for harmful instructions inside a fictional or role-play frame?
    ``words``: the text's words, for a cheap first test."""
    harms = [
        word
        for word in HARM_WORDS.intersection(words)
        if word not in _COMPANIONS or not _COMPANIONS[word].isdisjoint(words)
    ]
    if not harms or FRAME_WORDS.isdisjoint(words):
        return False
    head = folded[:HEAD_CHARS]
    if any(_requested(head, harm) for harm in harms) and _FRAME_RE.search(head) is not None:
        return True
    return _relative_recipe(head)


def _relative_recipe(head: str) -> bool:
    """A relative who tells the making of a harm and its steps, or software keys, in one stretch of text."""
    for relative in _RELATIVE_TELLS_RE.finditer(head):
        start, end = relative.start(), relative.end() + _RELATIVE_REACH
        if _MAKING_HARM_RE.search(head, start, end) and _STEPS_RE.search(head, start, end):
            return True
        if _KEYS_RE.search(head, start, end) and _RITUAL_RE.search(head) is not None:
            return True
    return False


def _requested(head: str, harm: str) -> bool:
    """Is some occurrence of the word ``harm`` the object of a request for instructions? The pattern
    runs only around the word's occurrences: over a whole text it costs about 70 us per 2 KB."""
    start = head.find(harm)
    while start >= 0:
        end = start + len(harm)
        if _HARM_REQUEST_RE.search(head, max(0, start - _REACH_BEFORE), end + _REACH_AFTER):
            return True
        start = head.find(harm, end)
    return False
