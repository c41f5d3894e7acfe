"""The form of a generated instruction: what a small backward model wraps around a request (unwrapped,
by a named rule), what reads as something other than a request (dropped by :mod:`.hygiene`), and
whether what is left reads as a request at all (the ``well_formed`` share, a quality signal).

Every pattern comes from generations of the demo's backward model (SmolLM2-135M after one step),
quoted in tests/augment/test_form.py: "Here is the instruction: ...", "The text is intended to answer
the question \"...\"", "This is an excellent example of ...", "To add to the previous text, ...",
"Text: Issues ------ ...", "1. Easy-to-use ..." (the segment's own first line), ":: :: ::".
"""

from __future__ import annotations

import re

_NOUN = r"(?:instruction|question|request|prompt|query|task)"
_TEXT = r"(?:text|passage|article|document|section|page|snippet|excerpt|post|content|paragraph)"

# (rule, pattern, replacement): applied in order, repeatedly, until none changes the text.
UNWRAP_RULES: tuple[tuple[str, re.Pattern, str], ...] = (
    # "Here is the instruction:", "Here's a possible question for this text -"
    ("lead_in", re.compile(rf"^(?:here\s+is|here's|this\s+is)\s+(?:the|an?|your|my|one|a\s+possible)?\s*"
                           rf"(?:possible\s+)?{_NOUN}s?\b[^:\n]{{0,40}}[:\-]\s*", re.I), ""),
    # "Instruction:", "Question -", "User: "
    ("label", re.compile(rf"^(?:{_NOUN}|user|human)\s*\d*\s*[:\-]\s*", re.I), ""),
    # 'The text is intended to answer the question "Why ...?"' -> the question
    ("answers_question", re.compile(rf"^(?:the|this)\s+{_TEXT}\s+(?:is\s+(?:intended|meant|written|trying)\s+to\s+|"
                                    rf"aims\s+to\s+|tries\s+to\s+|would\s+)?answers?\s+(?:the|a|this)\s+"
                                    rf"{_NOUN}:?\s*[\"“](.+?)[\"”]\.?$", re.I | re.S), r"\1"),
    # surrounding quotes or backticks
    ("quotes", re.compile(r"^([\"'“`])(.+)([\"'”`])$", re.S), r"\2"),
)

DESCRIBES_TEXT = re.compile(rf"^(?:(?:the|this)\s+{_TEXT}\b|this\s+is\s+(?:an?|the)\b|the\s+author\b|"
                            rf"in\s+this\s+{_TEXT}\b|it\s+(?:is|describes|explains)\b)", re.I)
CONTINUES_TEXT = re.compile(r"^(?:to\s+add\s+to\b|in\s+addition\b|additionally\b|furthermore\b|moreover\b|"
                            r"as\s+mentioned\b|continuing\b|following\s+up\b|also\s*,)", re.I)
# The other side of the pair under a label: the model writes out a text, not a request for one.
TEXT_LABEL = re.compile(rf"^(?:{_TEXT}|response|answer|output|assistant)\s*[:\-]", re.I)
LIST_FRAGMENT = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•+])\s")

_QUESTION_WORDS = {"how", "what", "why", "when", "where", "which", "who", "whom", "whose", "is", "are", "can",
                   "could", "would", "should", "do", "does", "did", "will", "may", "shall", "has", "have"}
# Verbs a request starts with (imperative), the head of the paper's and Alpaca's instructions.
_IMPERATIVES = {
    "add", "analyze", "analyse", "answer", "build", "calculate", "change", "check", "choose", "classify",
    "compare", "compose", "configure", "convert", "correct", "create", "debug", "define", "describe", "design",
    "detail", "develop", "draft", "edit", "evaluate", "explain", "extract", "find", "fix", "generate", "give",
    "help", "identify", "illustrate", "implement", "improve", "install", "introduce", "list", "make", "name",
    "outline", "plan", "prepare", "present", "propose", "provide", "recommend", "rewrite", "run", "set", "share",
    "show", "solve", "suggest", "summarize", "summarise", "teach", "tell", "translate", "use", "walk", "write",
}
_REQUEST_OPENINGS = re.compile(r"^(?:please\b|i\s+(?:want|need|would\s+like|'d\s+like|am\s+trying|'m\s+trying|"
                               r"have\s+a)\b|i'd\s+like\b|i'm\s+(?:trying|looking)\b|help\s+me\b|let's\b)", re.I)
_WORD = re.compile(r"[A-Za-z']+|\d+")


def unwrap(text: str) -> tuple[str, list[str]]:
    """The request inside what the model wrapped around it, and the names of the rules that fired."""
    text, fired = text.strip(), []
    changed = True
    while changed and text:
        changed = False
        for name, pattern, repl in UNWRAP_RULES:
            new = pattern.sub(repl, text, count=1).strip()
            if new != text and new:
                text, changed = new, True
                fired.append(name)
    return text, fired


def letter_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def opening_words(text: str, n: int) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)[:n]]


def reads_as_request(text: str) -> bool:
    """Whether an instruction reads as a request: a question, or a sentence that opens like a request
    (a question word, an imperative verb, "Please", "I want ...", "Help me ..."). A heuristic kept
    deliberately simple and documented; it measures, it does not drop (``well_formed``)."""
    text = text.strip()
    if not text:
        return False
    if "?" in text[:400]:
        return True
    words = opening_words(text, 1)
    if words and (words[0] in _QUESTION_WORDS or words[0] in _IMPERATIVES):
        return True
    return bool(_REQUEST_OPENINGS.match(text))


def well_formed_share(instructions: list[str]) -> float | None:
    """Share of ``instructions`` that read as requests (None for none)."""
    return round(sum(map(reads_as_request, instructions)) / len(instructions), 4) if instructions else None
