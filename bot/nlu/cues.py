"""Frustration cues: the observable signals that explain a frustration score to a human.

Cues are found with spaCy's PhraseMatcher and Matcher over a blank English tokenizer
(no model download), from the editable lexicon in ``cue_lexicon.yml``. They serve two
purposes: features for the trained frustration model, and reasons shown to agents.

Some of them are evidence of calm (gratitude, politeness): they are features too, and agents
see them apart (``CueReport.calm_cues``), never as a reason for frustration. The words around
a match decide whether it counts: a negation before it ("not unhappy", "wasn't terrible"),
sarcasm around it ("thanks for nothing"), or other frustration in the message (praise such as
"great job" is sarcasm in an upset message and thanks in a calm one).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import yaml
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

DEFAULT_LEXICON = Path(__file__).with_name("cue_lexicon.yml")

# Categories computed from the text's shape rather than from the lexicon.
SHAPE_CUES = ("capitals", "exclamations", "repeated_question_marks")
# Evidence of calm: reported in ``CueReport.calm_cues``, not among the reasons for frustration.
CALM_CUES = ("gratitude", "politeness")
# Every category, in a fixed order: the feature layout of the trained model depends on it.
CUE_CATEGORIES = (
    "repeat_contact",
    "displeasure",
    "insult",
    "threat_to_leave",
    "sarcasm",
    "urgency",
    "profanity",
) + CALM_CUES + SHAPE_CUES
# Lexicon category resolved per message into "sarcasm" (upset message) or "gratitude" (calm one).
AMBIGUOUS_PRAISE = "sarcasm_if_upset"
# Frustration that makes praise in the same message sarcastic.
_UPSET_EVIDENCE = ("repeat_contact", "displeasure", "insult", "threat_to_leave", "sarcasm", "profanity",
                   "capitals", "repeated_question_marks")

_LETTERS = re.compile(r"[A-Za-z]")
_SHOUTED_WORD = re.compile(r"\b[A-Z]{2,}[A-Z']*\b")
_EXCLAMATION_RUN = re.compile(r"!{2,}")
_QUESTION_RUN = re.compile(r"\?{2,}|\?!|!\?")
# Masked swearing ("f***", "sh*t", "a**") is split by the tokenizer, so it is matched on the text.
_MASKED_PROFANITY = re.compile(r"\b(?:f|sh|a|b|d)[*#@$%!]{2,}\w*|\bf[*#@$]+k\w*|\bsh[*#@$]+t\w*", re.IGNORECASE)
_ACRONYMS = {"OK", "ID", "US", "USA", "UK", "EU", "TV", "PC", "ASAP", "FAQ", "PIN", "SMS", "UPS", "DHL", "USPS", "FEDEX", "CEO", "BBB", "EMAIL"}


@dataclass
class CueReport:
    """Cues found in one message: ``counts`` feed the model; ``cues`` (why it may read as frustrated)
    and ``calm_cues`` (evidence of calm) are shown to people."""

    counts: Dict[str, int] = field(default_factory=dict)
    cues: List[str] = field(default_factory=list)
    calm_cues: List[str] = field(default_factory=list)
    capital_ratio: float = 0.0


@dataclass(frozen=True)
class _Match:
    category: str
    start: int
    end: int
    text: str

    def overlaps(self, other: "_Match") -> bool:
        return self.start < other.end and other.start < self.end


def _cue_text(category: str, phrase: str) -> str:
    return f"{category.replace('_', ' ')}: \"{phrase}\""


class CueDetector:
    """Finds frustration cues in text with spaCy matchers built from a YAML lexicon."""

    def __init__(self, lexicon_path: Optional[Path] = None) -> None:
        lexicon = yaml.safe_load(Path(lexicon_path or DEFAULT_LEXICON).read_text(encoding="utf-8"))
        self._nlp = spacy.blank("en")
        self._phrases = PhraseMatcher(self._nlp.vocab, attr="LOWER")
        for category, phrases in (lexicon.get("phrases") or {}).items():
            self._phrases.add(category, [self._nlp.make_doc(str(p)) for p in phrases])
        self._tokens = Matcher(self._nlp.vocab)
        for category, patterns in (lexicon.get("token_patterns") or {}).items():
            self._tokens.add(category, [[{"LOWER": {"REGEX": p}}] for p in patterns])
        negation = lexicon.get("negation") or {}
        self._negators = frozenset(str(w).lower() for w in negation.get("negators") or ())
        self._negated_categories = frozenset(negation.get("categories") or ()) | {AMBIGUOUS_PRAISE}
        self._negation_window = int(negation.get("window", 3))
        self._negation_breaks = frozenset(str(w).lower() for w in negation.get("breaks") or ())
        self._upset_ignores = frozenset(str(w).lower() for w in lexicon.get("upset_evidence_ignores") or ())
        self._unresolved = PhraseMatcher(self._nlp.vocab, attr="LOWER")
        self._unresolved.add("tap_unresolved", [self._nlp.make_doc(str(p)) for p in lexicon.get("tap_unresolved") or ()])

    def says_unresolved(self, text: str) -> bool:
        """Whether a button title says the problem is not solved ("No, not yet", "Still broken")."""
        return bool(text and self._unresolved(self._nlp.make_doc(text)))

    def detect(self, text: str) -> CueReport:
        """Every cue in ``text``, each judged in context (negation, sarcasm, an upset message)."""
        report = CueReport(counts={c: 0 for c in CUE_CATEGORIES})
        if not text or not text.strip():
            return report
        doc = self._nlp.make_doc(text)
        matches: List[_Match] = []
        for matcher in (self._phrases, self._tokens):
            for match_id, start, end in matcher(doc):
                category = self._nlp.vocab.strings[match_id]
                match = _Match(category, start, end, doc[start:end].text)
                if category in self._negated_categories and self._negated(doc, start, end):
                    if category != AMBIGUOUS_PRAISE:
                        continue  # "not unhappy", "wasn't terrible", "not urgent", "not perfect"
                    # "not very helpful": praise denied is displeasure
                    begin = self._negation_start(doc, start)
                    match = _Match("displeasure", begin, end, doc[begin:end].text)
                matches.append(match)
        shape = CueReport(counts={})
        self._shape_cues(text, shape)
        upset = any(m.category in _UPSET_EVIDENCE and m.text.lower() not in self._upset_ignores for m in matches) \
            or any(shape.counts.get(c) for c in _UPSET_EVIDENCE)
        matches = [_Match("sarcasm" if upset else "gratitude", m.start, m.end, m.text)
                   if m.category == AMBIGUOUS_PRAISE else m for m in matches]
        sarcasm = [m for m in matches if m.category == "sarcasm"]
        calm = [m for m in matches if m.category in CALM_CUES
                and not any(m.overlaps(s) for s in sarcasm)           # "thanks for nothing"
                and not (m.category == "politeness" and m.text.isupper() and len(m.text) > 1)]  # "PLEASE"
        calm = self._longest(calm)  # "great thanks" once, not also "thanks"
        matches = [m for m in matches if not (m.text.lower() in self._upset_ignores  # "thanks again"
                                              and any(c.end == m.start for c in calm))]
        seen = set()
        for match in [m for m in matches if m.category not in CALM_CUES] + calm:
            report.counts[match.category] = report.counts.get(match.category, 0) + 1
            key = (match.category, match.text.lower())
            if key not in seen:
                seen.add(key)
                (report.calm_cues if match.category in CALM_CUES else report.cues).append(
                    _cue_text(match.category, match.text))
        for category, count in shape.counts.items():
            report.counts[category] = report.counts.get(category, 0) + count
        report.cues.extend(shape.cues)
        report.capital_ratio = shape.capital_ratio
        return report

    def _negation_start(self, doc: Doc, start: int) -> int:
        """Where the negation before ``start`` begins (the negator's token)."""
        for index in range(start - 1, max(-1, start - 1 - self._negation_window), -1):
            if doc[index].lower_ in self._negators:
                return index
        return start

    def _negated(self, doc: Doc, start: int, end: int) -> bool:
        """A negator within the window before the match, with no punctuation or break word between.

        A phrase that holds the negation itself ("not happy") is what it says.
        """
        if any(token.lower_ in self._negators for token in doc[start:end]):
            return False
        for index in range(start - 1, max(-1, start - 1 - self._negation_window), -1):
            token = doc[index]
            if token.is_punct or token.lower_ in self._negation_breaks:
                return False
            if token.lower_ in self._negators:
                return True
        return False

    @staticmethod
    def _longest(matches: List[_Match]) -> List[_Match]:
        """Overlapping matches reduced to the longest, in text order."""
        kept: List[_Match] = []
        for match in sorted(matches, key=lambda m: (m.start - m.end, m.start)):
            if not any(match.overlaps(k) for k in kept):
                kept.append(match)
        return sorted(kept, key=lambda m: m.start)

    @staticmethod
    def _shape_cues(text: str, report: CueReport) -> None:
        letters = _LETTERS.findall(text)
        uppercase = sum(1 for ch in letters if ch.isupper())
        report.capital_ratio = uppercase / len(letters) if letters else 0.0
        # Codes and abbreviations (airport codes, SKUs, "LHR to JFK") are two or three capitals: not shouting.
        # A message written all in capitals still counts through the ratio below.
        shouted = [w for w in _SHOUTED_WORD.findall(text) if w.strip("'") not in _ACRONYMS and len(w.strip("'")) >= 4]
        if len(shouted) >= 2 or (report.capital_ratio > 0.6 and len(letters) >= 8):
            report.counts["capitals"] = max(1, len(shouted))
            report.cues.append(f"capitals: \"{' '.join(shouted[:4])}\"")
        masked = _MASKED_PROFANITY.findall(text)
        if masked:
            report.counts["profanity"] = report.counts.get("profanity", 0) + len(masked)
            report.cues.append(f"profanity: \"{masked[0]}\"")
        exclamations = _EXCLAMATION_RUN.findall(text)
        if exclamations:
            report.counts["exclamations"] = len(exclamations)
            report.cues.append("exclamations: \"!!\"")
        questions = _QUESTION_RUN.findall(text)
        if questions:
            report.counts["repeated_question_marks"] = len(questions)
            report.cues.append(f"repeated question marks: \"{questions[0]}\"")


@lru_cache(maxsize=4)
def detector_for(lexicon_path: Optional[str] = None) -> CueDetector:
    """One detector per lexicon file: building the matchers costs more than matching."""
    return CueDetector(Path(lexicon_path) if lexicon_path else None)
