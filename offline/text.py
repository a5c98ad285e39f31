"""Keywords from product descriptions: noun-like words, stemmed (no corpus download needed).

The seed tagged nouns with NLTK's POS tagger; that needs a downloaded model, so a word counts as a
noun-like keyword here when it is alphabetic, at least 3 letters long and not in a list of
colours, adjectives, sizes and function words that dominate this catalogue's descriptions.

>>> keywords("SET OF 3 WHITE HEART HANGING DECORATIONS")
['heart', 'decor']
"""

from __future__ import annotations

import re
from functools import lru_cache

from nltk.stem import PorterStemmer

_STEMMER = PorterStemmer()
_WORD = re.compile(r"[a-z]+")

#: not nouns, or too generic to separate products
_STOP_TEXT = """
    set of and the with for in on to a an by from pack box assorted asst colour colours
    white black red blue green pink yellow purple orange gold silver ivory cream brown grey
    gray turquoise lilac natural clear multi colored coloured pastel bright dark light
    small large big mini medium giant jumbo tiny tall long short round square heart shaped
    vintage retro antique classic new old french english spanish
    hanging hand painted printed design designs style styled
    sweet pretty lovely cute fancy funky happy little
    glass metal wooden wood paper ceramic enamel tin zinc rattan felt fabric cotton
    one two three four five six eight ten twelve dozen pair pcs piece pieces
    led sets des"""
STOP_WORDS = frozenset(_STOP_TEXT.split()) - {"heart"}


@lru_cache(maxsize=200_000)
def keywords(description: str | None) -> list[str]:
    """Stemmed noun-like keywords of a description, in order, without repeats."""
    if not description:
        return []
    out: list[str] = []
    for word in _WORD.findall(description.lower()):
        if len(word) < 3 or word in STOP_WORDS:
            continue
        stem = _STEMMER.stem(word)
        if stem not in out:
            out.append(stem)
    return out


def keyword_analyzer(description: str) -> list[str]:
    """Analyzer for :class:`sklearn.feature_extraction.text.CountVectorizer` (picklable)."""
    return keywords(description)
