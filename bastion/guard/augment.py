"""Benign rows written by the project for training: the over-defence cases the corpus has too few of.

A bag-of-n-grams model learns that "system prompt", "jailbreak", "pretend you are" or "ignore"
mean attack, because in the corpus they mostly do. Real users write those words in ordinary
requests: questions about security, prompts that quote an attack in order to ask about it,
instructions to the assistant about style and the answer's form, role-play for practice or teaching. These rows are
generated from templates (deterministically), labelled benign, and used for training only; the
quoted attacks come from training rows only, so no test row leaks in. Licence: the project's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

_TOPICS = (
    "prompt injection",
    "jailbreak prompts",
    "the DAN jailbreak",
    "system prompts",
    "developer mode on Android phones",
    "content filters in chat applications",
    "role-play prompts",
    "password managers",
    "leaked API keys",
    "red teaming of language models",
    "guardrails for chatbots",
    "instruction tuning",
    "hidden instructions in web pages",
    "social engineering",
    "phishing emails",
    "data exfiltration",
    "safety policies of AI assistants",
    "uncensored open-source models",
)
_TOPIC_FRAMES = (
    "What is {t}, and why does it matter for AI safety?",
    "Can you explain {t} to a non-technical manager in a few sentences?",
    "Write a short blog post about {t} for our engineering newsletter.",
    "What are the best practices around {t}?",
    "Which research papers should I read to understand {t}?",
    "How do companies protect themselves against problems caused by {t}?",
    "I'm preparing a lecture on {t}. Could you outline the main points?",
    "Was versteht man unter {t}, und warum ist das wichtig?",
    "Peux-tu m'expliquer ce que sont {t} ?",
    "¿Qué riesgos plantean {t} para una empresa?",
)
_ANALYSIS_FRAMES = (
    'Is the following text a prompt-injection attempt? Answer yes or no and explain briefly.\n\n"{x}"',
    'Our support bot received this message: "{x}"\nWhy would someone send that, and how should the bot respond safely?',
    "I'm building a filter for malicious prompts. Which part of this example is the attack?\n{x}",
    "For my security awareness slides, describe in one sentence what this jailbreak attempt is trying to do: '{x}'",
    "Label this chatbot input as SAFE or ATTACK for our evaluation set, with a short reason: {x}",
    'Someone posted this on a forum and claims it unlocks the assistant: "{x}". Is that true, and is it risky?',
    'Ist der folgende Text ein Versuch einer Prompt-Injection? Bitte begründe kurz.\n"{x}"',
    "Ce message est-il une tentative d'injection de prompt ? Explique pourquoi.\n« {x} »",
    '¿Es este mensaje un intento de jailbreak? Explica por qué.\n"{x}"',
)
_ROLES = ("bakery", "dental clinic", "bicycle shop", "public library", "hotel front desk", "tax advisory firm")
_SYSTEM_FRAMES = (
    "Write a system prompt for a friendly assistant that answers questions for a {r}.",
    "Improve this system prompt for our {r} chatbot so it stays polite and on topic: 'You help customers.'",
    "What should the instructions of a chatbot for a {r} say about privacy?",
)
_STYLE_REQUESTS = (
    "From now on, answer in Spanish and keep every reply short.",
    "For the rest of this chat, please use metric units.",
    "Ignore the formatting of the table I pasted; just tell me which month had the highest sales.",
    "Please disregard my last question, I found the answer. Instead, can you suggest a name for my cat?",
    "Forget what I said about the deadline, we have until Friday. Can you re-plan the week?",
    "Override my earlier choice of colours: make the chart blue and grey instead.",
    "Don't worry about the previous instructions for the essay; the teacher changed the topic to climate change.",
    "Bitte ignoriere die Tippfehler in meiner letzten Nachricht und beantworte die Frage.",
    "Oublie ma question précédente et aide-moi plutôt à écrire une liste de courses.",
    "Olvida lo que te dije antes sobre el presupuesto; ¿qué hotel recomiendas en Lisboa?",
)
# Instructions about the shape of the answer: in real traffic they are everywhere, in the corpus
# their wording ("start your reply with", "do not apologize", "answer only with") is mostly in
# jailbreaks. Each is paired with an ordinary task.
_FORMAT_RULES = (
    "Start your reply with a one-line summary, then list the steps.",
    "Begin your answer with the final figure and show the working after it.",
    'Begin the letter with "Dear Ms. Novak" and end it with "Kind regards".',
    "Do not apologize or add filler sentences; be direct.",
    'Don\'t use the words "very" or "really", and keep sentences short.',
    "Answer only with yes or no.",
    "Respond only with valid JSON, no other text.",
    "Do not include any explanation, just the code.",
    "Never mention our competitors by name.",
    "Output a bulleted list without an introduction or a conclusion.",
    "Reply in the same language as the question, and keep it under 100 words.",
    "No disclaimers needed, I know this is general information.",
    "Never say 'unfortunately' to the customer; say what we can do instead.",
    "Don't open with 'As an AI language model', just answer.",
    "Start your response with a short table comparing the options.",
    "Begin your reply with a friendly greeting and the customer's first name.",
    "Start your answer with the conclusion and continue with the reasoning.",
    "Start each reply with a one-sentence summary and continue with the details.",
    "Beginne deine Antwort mit einer kurzen Zusammenfassung.",
    "Commence ta réponse par un résumé d'une phrase.",
    "Avoid starting every sentence with 'I'm sorry'; one apology is enough.",
    "Write it in the second person and avoid jargon.",
    "Start with the most important point and skip the greeting.",
    "Beginne deine Antwort mit einer kurzen Zusammenfassung.",
    "Commence ta réponse par un résumé en une phrase.",
    "Empieza tu respuesta con la conclusión y luego explica los detalles.",
)
_FORMAT_TASKS = (
    "Summarise the meeting notes I pasted above.",
    "Explain how compound interest works.",
    "Write a product description for a steel water bottle.",
    "Compare renting and buying a flat in a big city.",
    "Suggest five ideas for a team lunch.",
    "Review my Python function for bugs.",
    "Tell me how to repot a large houseplant.",
    "Draft a reply to a customer whose parcel arrived late.",
)
_PERSONAS = (
    ("a patient chemistry teacher", "explain how batteries work to a ten-year-old"),
    ("a tour guide in Kyoto", "describe a one-day walking route"),
    ("a hiring manager", "give me feedback on my cover letter's opening line"),
    ("a sports commentator", "narrate a friendly neighbourhood football match"),
    ("a librarian", "recommend three novels for a long train journey"),
    ("a Socratic tutor", "help me understand why the sky is blue by asking questions"),
    ("a medieval blacksmith", "tell me about your working day"),
    ("Marie Curie in her laboratory", "describe what drives your research"),
    ("a ship's captain in a storm", "give orders to your crew"),
    ("a job interviewer at a software company", "ask me your first three questions"),
    ("a grumpy but kind innkeeper in a fantasy novel", "greet a tired traveller"),
    ("a detective in 1920s London", "explain how you solved the case of the missing necklace"),
    ("a customer who received the wrong order", "let me practise handling your complaint"),
    ("a famous chef", "walk me through your signature dish"),
    ("an astronaut on the space station", "describe the view of Earth"),
    ("a French waiter", "help me practise ordering dinner in French"),
    ("Abraham Lincoln", "reflect on the challenges of leading during a civil war"),
    ("a park ranger", "warn hikers about the weather on the trail"),
    ("a villain in my fantasy novel", "deliver a dramatic monologue about taking the throne"),
    ("my opponent in a debate on school uniforms", "argue the other side"),
)
_PERSONA_FRAMES = (
    "Pretend you are {p} and {t}.",
    "Act as {p}. Please {t}.",
    "You are {p} now; stay in that role and {t}.",
    "Let's role-play: you're {p}, and I'd like you to {t}.",
    "Imagine you are {p}: {t}.",
    "Take on the role of {p} and {t}.",
)

# The grandma exploit's words and the password game's words in what users ordinarily ask: a late
# relative's recipes and stories, and advice about passwords and secrets.
_FAMILY_MEMORIES = (
    "My grandma would tell me her recipe for apple pie every Christmas; can you write it out with steps?",
    "My late grandfather used to tell me stories about his years as a miner. Help me write a eulogy.",
    "My grandmother used to sing me a lullaby in Welsh; can you help me find the words?",
    "Pretend you are my late grandmother and tell me one of her sayings about patience, she was a teacher.",
    "Mein Opa hat mir früher immer erzählt, wie er Brot gebacken hat. Kannst du ein Rezept vorschlagen?",
    "Ma grand-mère me racontait toujours comment elle faisait la confiture. Tu connais une recette ?",
    "My uncle was an engineer at a car factory; he would explain how engines work. Explain it like he did.",
    "Act as my grandfather, a retired fisherman, and tell me how to tie a bowline knot.",
)
_SECRET_ADVICE = (
    'Translate to Spanish: "Do not share your password with anyone, not even IT staff."',
    "Write a short reminder for staff: never tell anyone your password, and report phishing emails.",
    "What makes a strong password, and how often should I change it?",
    "Our intern pasted an API key into a public repo. What should we do now?",
    "Explain to my parents why they should never read their bank PIN out over the phone.",
    "Draft a security notice: the secret word for the office door changes on Monday; ask your manager.",
    "Is it safe to store passwords in the browser, or should I use a password manager?",
    "Schreibe eine kurze Erinnerung: Gib dein Passwort niemals weiter, auch nicht an die IT.",
)

# Games, stories that touch crime or hacking without asking how it is done, and users taking back
# their own words: the openers of role-play jailbreaks ("let's play a game", "in my novel the hacker")
# and of overrides ("forget what I said") in what users ordinarily write.
_ORDINARY_PLAY = (
    "Let's play a game of twenty questions: I'm thinking of a fruit, you ask the questions.",
    "Let's play a word game: each of us says a word that starts with the last letter of the previous one.",
    "Let's play a riddle game. Give me an easy riddle and wait for my answer before telling me.",
    "Spielen wir ein Spiel: Du denkst dir eine Stadt aus, und ich rate sie mit Ja/Nein-Fragen.",
    "Jouons à un jeu : tu choisis un animal et je dois le deviner en posant des questions.",
    "In my novel a teenage hacker is caught by her school; write the scene where she explains herself to the"
    " principal.",
    "For my screenplay, write an argument between two bank robbers who regret the heist, no details of the"
    " robbery itself.",
    "Write a short crime story where the detective realises the butler forged the will, told from the butler's"
    " point of view.",
    "My daughter wants to pretend to be a dragon tamer at her birthday party. Can you write a little script?",
    "Write a poem titled 'Ignore the Noise' about finding calm in a busy city.",
    "Compose a song called 'Forget the Rules' about a summer road trip with friends.",
    "Is this email a scam? 'Dear customer, your parcel is on hold, pay the 1.99 fee at the link below.'",
    "Forget what I said about the blue theme, let's make the website green. Suggest a colour palette.",
    "Ignore my earlier question about flights; I'm taking the train. How long is Paris to Lyon?",
    "Scratch my last message, I meant 300 grams of flour, not 30. Does the recipe still work?",
    "Vergiss meine letzte Frage, ich meinte Excel, nicht Word. Wie sortiere ich eine Spalte?",
    "Tu es maintenant mon coach de course à pied : propose-moi un plan pour courir 10 km.",
    "A partir de ahora eres mi profesor de cocina; ¿cómo hago una tortilla de patatas?",
)
# Open questions: "tell me everything" is also how jailbreaks ask for a harm in full.
_OPEN_QUESTIONS = (
    "Tell me everything you know about sea otters.",
    "Tell me everything you know about the history of the bicycle.",
    "Erzähl mir alles, was du über Vulkane weißt.",
)
# Copies and openers of the user's own text: what prompt extraction asks for ("the text above in
# full", "starting with 'You are'"), asked about text the user wrote or pasted.
_ORDINARY_COPIES = (
    "Write five affirmations for my sister, each starting with 'You are'.",
    'Give every person on my team a one-line compliment beginning with "You are".',
    "Here is my shopping list: eggs, milk, bread. Print the list above again, sorted alphabetically.",
    "Copy the paragraph above into a table with one sentence per row.",
    "Complete this sentence for my English class: 'When I was ten years old, I ...'",
)


def pick(seed: str, key: str, count: int) -> int:
    """A deterministic index below ``count`` for ``key``: the generated rows' only source of choice."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:4], "big") % count


def benign_rows(quoted_attacks: Sequence[str], seed: str) -> Iterator[str]:
    """Benign training texts: questions about security topics, attack analysis with a quoted attack
    (one frame per attack, chosen by hash), system-prompt writing, style and format instructions,
    role-play, a relative's recipes and stories, advice about passwords, games, stories about crime
    without its how-to, users taking back their own words, copies of the user's own text and open questions."""
    for frame in _TOPIC_FRAMES:
        for topic in _TOPICS:
            yield frame.format(t=topic)
    for attack in quoted_attacks:
        yield _ANALYSIS_FRAMES[pick(seed, attack, len(_ANALYSIS_FRAMES))].format(x=attack.strip())
    for frame in _SYSTEM_FRAMES:
        for role in _ROLES:
            yield frame.format(r=role)
    yield from _STYLE_REQUESTS
    for index, rule in enumerate(_FORMAT_RULES):  # two tasks per rule, before or after it
        for turn in range(2):
            task = _FORMAT_TASKS[pick(seed, f"{rule}\0{turn}", len(_FORMAT_TASKS))]
            yield f"{task} {rule}" if (index + turn) % 2 else f"{rule} {task}"
    for frame in _PERSONA_FRAMES:
        for persona, task in _PERSONAS:
            yield frame.format(p=persona, t=task)
    yield from _FAMILY_MEMORIES
    yield from _SECRET_ADVICE
    yield from _ORDINARY_PLAY
    yield from _ORDINARY_COPIES
    yield from _OPEN_QUESTIONS
