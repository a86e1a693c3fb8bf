"""Frustration cues: the observable signals that explain a frustration score to a human.

Cues are found with spaCy's PhraseMatcher and Matcher over a blank English tokenizer
(no model download), from the editable lexicon in ``cue_lexicon.yml``. They serve two
purposes: features for the trained frustration model, and reasons shown to agents.
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

DEFAULT_LEXICON = Path(__file__).with_name("cue_lexicon.yml")

# Categories computed from the text's shape rather than from the lexicon.
SHAPE_CUES = ("capitals", "exclamations", "repeated_question_marks")
# Every category, in a fixed order: the feature layout of the trained model depends on it.
CUE_CATEGORIES = (
    "repeat_contact",
    "displeasure",
    "insult",
    "threat_to_leave",
    "sarcasm",
    "urgency",
    "profanity",
) + SHAPE_CUES

_LETTERS = re.compile(r"[A-Za-z]")
_SHOUTED_WORD = re.compile(r"\b[A-Z]{2,}[A-Z']*\b")
_EXCLAMATION_RUN = re.compile(r"!{2,}")
_QUESTION_RUN = re.compile(r"\?{2,}|\?!|!\?")
# Masked swearing ("f***", "sh*t", "a**") is split by the tokenizer, so it is matched on the text.
_MASKED_PROFANITY = re.compile(r"\b(?:f|sh|a|b|d)[*#@$%!]{2,}\w*|\bf[*#@$]+k\w*|\bsh[*#@$]+t\w*", re.IGNORECASE)
_ACRONYMS = {"OK", "ID", "US", "USA", "UK", "EU", "TV", "PC", "ASAP", "FAQ", "PIN", "SMS", "UPS", "DHL", "USPS", "FEDEX", "CEO", "BBB", "EMAIL"}


@dataclass
class CueReport:
    """Cues found in one message: ``counts`` feed the model, ``cues`` are shown to people."""

    counts: Dict[str, int] = field(default_factory=dict)
    cues: List[str] = field(default_factory=list)
    capital_ratio: float = 0.0


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

    def detect(self, text: str) -> CueReport:
        report = CueReport(counts={c: 0 for c in CUE_CATEGORIES})
        if not text or not text.strip():
            return report
        doc = self._nlp.make_doc(text)
        seen = set()
        for matcher in (self._phrases, self._tokens):
            for match_id, start, end in matcher(doc):
                category = self._nlp.vocab.strings[match_id]
                phrase = doc[start:end].text
                report.counts[category] = report.counts.get(category, 0) + 1
                key = (category, phrase.lower())
                if key not in seen:
                    seen.add(key)
                    report.cues.append(f"{category.replace('_', ' ')}: \"{phrase}\"")
        self._shape_cues(text, report)
        return report

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
