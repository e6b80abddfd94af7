"""Step 18b: synthetic translation tasks, generated on the spot: no download, any size, any seed.

A toy task shows what attention does more clearly than real text, because we know the right
alignment in advance. Each task maps a source string to a target string:

``copy``
    ``"f c k c"`` -> ``"f c k c"``. Cross-attention should be the diagonal: output i looks
    at input i.
``reverse``
    ``"f c k c"`` -> ``"c k c f"``. The anti-diagonal.
``svo_to_sov``
    A toy language pair. The source is English-like: subject-verb-object, adjectives before
    the noun, prepositions. The target language is verb-final with adjectives after the noun,
    articles at the end of the noun phrase, and postpositions, and every word is translated
    one-for-one through a small lexicon (:data:`SVO_LEXICON`)::

        the big dog sees the small cat with the red ball quickly
        doro gana ta kima piti ta lupa roza ta kon rapi miru

    The rule, applied to ``SUBJ VERB OBJ [PREP NP] [ADV]`` with ``NP = the ADJ* NOUN``::

        sentence:  SUBJ VERB OBJ [PP] [ADV]  ->  SUBJ' OBJ' [PP'] [ADV'] VERB'
        NP:        the ADJ1 ADJ2 NOUN        ->  NOUN' ADJ1' ADJ2' ta
        PP:        PREP NP                   ->  NP' PREP'

    so ``the big dog sees the small cat`` -> ``doro gana ta kima piti ta miru``. The verb
    jumps to the end and every noun phrase turns around its noun: a cross-attention plot on
    this task is visibly *not* diagonal, in a pattern you can predict word by word.
``dates``
    ``"2024-03-07"`` -> ``"7 March 2024"``: day and year swap places and the month number
    becomes a name. Meant for a character-level vocabulary.

Use :data:`TASK_LEVELS` (or :func:`task_vocabulary`) to pick the tokenizer of a task::

    >>> pairs = make_task("reverse", num_examples=2, seed=0, min_len=3, max_len=5)
    >>> [(s.split()[::-1] == t.split()) for s, t in pairs]
    [True, True]
"""

from __future__ import annotations

import calendar
import itertools
import string

import numpy as np

from attention._checks import check_choice, check_task_args
from attention.data.vocab import Vocabulary

TASKS = ("copy", "reverse", "svo_to_sov", "dates")
TASK_LEVELS = {"copy": "word", "reverse": "word", "svo_to_sov": "word", "dates": "char"}

SYMBOLS = tuple(string.ascii_lowercase)  # the alphabet of copy and reverse

# source word -> target word, by part of speech. The target words are made up, so the model
# cannot lean on any real language it might have seen.
SVO_LEXICON: dict[str, dict[str, str]] = {
    "noun": {
        "dog": "doro", "cat": "kima", "bird": "piru", "fish": "sako", "child": "tebi",
        "woman": "mena", "man": "raku", "teacher": "solu", "farmer": "nadi", "horse": "bafo",
        "king": "gumo", "robot": "zeta", "ball": "lupa", "tree": "arbo",
    },
    "verb": {
        "sees": "miru", "likes": "suki", "follows": "otsu", "helps": "tasu", "finds": "haku",
        "chases": "kaze", "feeds": "yoba", "draws": "ekal",
    },
    "adjective": {
        "big": "gana", "small": "piti", "red": "roza", "blue": "belu", "old": "vesa",
        "young": "nuvi", "happy": "feli", "sleepy": "dormi", "tall": "alto", "green": "verda",
    },
    "preposition": {"with": "kon", "near": "pres", "under": "sub", "behind": "post"},
    "adverb": {"quickly": "rapi", "slowly": "lenta", "often": "ofta", "quietly": "sila"},
    "article": {"the": "ta"},
}
MAX_ADJECTIVES = 2  # per noun phrase

# Spelled out: calendar.month_name follows the process's locale ("März" under de_DE).
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)

_DEFAULT_LENGTHS = {"copy": (3, 12), "reverse": (3, 12), "svo_to_sov": (5, 15)}


def make_task(
    name: str,
    *,
    num_examples: int,
    seed: int = 0,
    min_len: int | None = None,
    max_len: int | None = None,
) -> list[tuple[str, str]]:
    """``num_examples`` (source, target) pairs of the synthetic task ``name``.

    The same arguments always give the same pairs (NumPy's PCG64 generator, seeded with
    ``seed``). Draw training and test sets with different seeds.

    Args:
      name: one of :data:`TASKS`.
      num_examples: how many pairs.
      seed: the random seed.
      min_len: shortest source, in words (tokens); default 3 for ``copy``/``reverse`` and 5
        (the shortest sentence) for ``svo_to_sov``. Lengths are drawn uniformly between
        ``min_len`` and ``max_len``. ``dates`` has fixed lengths and takes neither.
      max_len: longest source, in words; default 12, and 15 (the longest sentence the
        grammar makes) for ``svo_to_sov``.

    Returns:
      A list of ``(source, target)`` strings, tokens separated by single spaces (``dates``:
      characters).

    Raises:
      TypeError: ``num_examples``, ``min_len`` or ``max_len`` not an int.
      ValueError: unknown ``name``, a negative ``num_examples``, or lengths the task cannot
        make.
    """
    num_examples, min_len, max_len = check_task_args(
        name, num_examples, min_len, max_len, tasks=TASKS, default_lengths=_DEFAULT_LENGTHS,
        svo_lengths=(SVO_MIN_LEN, SVO_MAX_LEN))
    rng = np.random.default_rng(seed)
    if name == "dates":
        return [_date_pair(rng) for _ in range(num_examples)]
    if name == "svo_to_sov":
        return _svo_pairs(rng, num_examples, min_len, max_len)
    pairs = []
    for _ in range(num_examples):
        length = int(rng.integers(min_len, max_len + 1))
        symbols = [SYMBOLS[i] for i in rng.integers(0, len(SYMBOLS), size=length)]
        target = symbols if name == "copy" else symbols[::-1]
        pairs.append((" ".join(symbols), " ".join(target)))
    return pairs


def task_vocabulary(name: str) -> Vocabulary:
    """The complete vocabulary of task ``name`` (source and target), whatever the seed.

    Built from the task's closed alphabet or lexicon rather than from samples, so a test set
    never holds a token that training lacked and every seed shares one set of ids.
    """
    check_choice("name", name, TASKS)
    if name in ("copy", "reverse"):
        return Vocabulary(SYMBOLS, level="word")
    if name == "svo_to_sov":
        words = [w for table in SVO_LEXICON.values() for pair in table.items() for w in pair]
        return Vocabulary(words, level="word")
    months = "".join(MONTHS)
    chars = sorted(set(string.digits + "- " + months))
    return Vocabulary(chars, level="char")


# --- svo_to_sov -------------------------------------------------------------------------------

# A sentence's shape: adjectives on the subject, adjectives on the object, adjectives on the
# prepositional phrase's noun (None: no phrase), and whether it ends with an adverb.
_Shape = tuple[int, int, int | None, bool]


def _shape_length(shape: _Shape) -> int:
    subj, obj, pp, adverb = shape
    length = (2 + subj) + 1 + (2 + obj) + int(adverb)
    return length + (0 if pp is None else 1 + 2 + pp)


_SHAPES: list[_Shape] = [
    (s, o, p, a)
    for s, o in itertools.product(range(MAX_ADJECTIVES + 1), repeat=2)
    for p in (None, *range(MAX_ADJECTIVES + 1))
    for a in (False, True)
]
SVO_MIN_LEN = min(map(_shape_length, _SHAPES))  # 5: "the dog sees the cat"
SVO_MAX_LEN = max(map(_shape_length, _SHAPES))  # 15


def _svo_pairs(rng, num_examples, min_len, max_len):
    # Draw a length uniformly, then a shape of that length: uniform lengths, like copy/reverse.
    shapes_by_length = {
        n: [s for s in _SHAPES if _shape_length(s) == n] for n in range(min_len, max_len + 1)
    }
    lengths = [n for n, shapes in shapes_by_length.items() if shapes]
    pairs = []
    for _ in range(num_examples):
        shapes = shapes_by_length[lengths[int(rng.integers(len(lengths)))]]
        subj_adj, obj_adj, pp_adj, adverb = shapes[int(rng.integers(len(shapes)))]
        # Three different nouns, so that every word of the alignment is unambiguous.
        nouns = _choose(rng, "noun", 3)
        source = _np(rng, nouns[0], subj_adj)
        verb = _choose(rng, "verb", 1)
        source_words = [*source, *verb, *_np(rng, nouns[1], obj_adj)]
        if pp_adj is not None:
            source_words += [*_choose(rng, "preposition", 1), *_np(rng, nouns[2], pp_adj)]
        if adverb:
            source_words += _choose(rng, "adverb", 1)
        source_text = " ".join(source_words)
        pairs.append((source_text, _svo_translate(source_words)))
    return pairs


def _choose(rng, part_of_speech: str, k: int) -> list[str]:
    words = list(SVO_LEXICON[part_of_speech])
    return [words[i] for i in rng.choice(len(words), size=k, replace=False)]


def _np(rng, noun: str, num_adjectives: int) -> list[str]:
    return ["the", *_choose(rng, "adjective", num_adjectives), noun]


def _svo_translate(words: list[str]) -> str:
    """Apply the grammar of the module docstring to a sentence made by :func:`_svo_pairs`."""
    lex = {w: (pos, t) for pos, table in SVO_LEXICON.items() for w, t in table.items()}
    position = 0

    def noun_phrase() -> list[str]:
        nonlocal position
        start = position  # at "the"
        position += 1
        while lex[words[position]][0] == "adjective":
            position += 1
        noun = words[position]
        position += 1
        adjectives = words[start + 1 : position - 1]
        return [lex[noun][1], *(lex[a][1] for a in adjectives), lex["the"][1]]

    subject = noun_phrase()
    verb = lex[words[position]][1]
    position += 1
    target = subject + noun_phrase()
    if position < len(words) and lex[words[position]][0] == "preposition":
        preposition = lex[words[position]][1]
        position += 1
        target += [*noun_phrase(), preposition]
    if position < len(words):
        target.append(lex[words[position]][1])  # the adverb, just before the verb
    return " ".join([*target, verb])


def svo_alignment(source: str, target: str) -> list[list[int] | None]:
    """The true word alignment of an ``svo_to_sov`` pair: for each target word, its source.

    Every target word is the translation of a source word through :data:`SVO_LEXICON`, except
    the article ``ta``: it closes a noun phrase, and with a ``the`` opening every phrase of the
    source there is no one word it translates, so it gets None (not scored). For target word t
    the answer is the list of source positions (0-based, words split on whitespace) whose word
    translates to it: one position, or several when a word occurs twice in the source (two
    noun phrases may share an adjective). This is the ``alignments[b]`` that
    :func:`attention.inspection.analysis.alignment_accuracy` scores heads against; decoder
    row t produces target word t.

    Only the words are checked, not their order: every word must belong to the lexicon's
    side it stands on, and every target word but ``ta`` must have its source word in the
    source.

    Args:
      source: the source sentence, as ``make_task("svo_to_sov", ...)`` makes it.
      target: its translation (or any target-language sentence over the same words).

    Returns:
      One entry per target word: a list of source positions, or None for ``ta``.

    Raises:
      TypeError: ``source`` or ``target`` not a string.
      ValueError: a word outside :data:`SVO_LEXICON` (named), or a target word whose source
        word the source lacks.

    >>> svo_alignment("the big dog sees the cat", "doro gana ta kima ta miru")
    [[2], [1], None, [5], None, [3]]
    """
    for name, text in (("source", source), ("target", target)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a string of words, got {type(text).__name__}.")
    translation = {w: t for table in SVO_LEXICON.values() for w, t in table.items()}
    article = SVO_LEXICON["article"]["the"]
    source_words = source.split()
    for s, word in enumerate(source_words):
        if word not in translation:
            raise ValueError(
                f"source word {s} is {word!r}, which is not a source word of SVO_LEXICON; "
                f"source={source!r} is not an svo_to_sov sentence."
            )
    target_words = set(translation.values())
    alignment: list[list[int] | None] = []
    for t, word in enumerate(target.split()):
        if word not in target_words:
            raise ValueError(
                f"target word {t} is {word!r}, which is not a target word of SVO_LEXICON; "
                f"target={target!r} is not an svo_to_sov translation."
            )
        if word == article:
            alignment.append(None)
            continue
        positions = [s for s, w in enumerate(source_words) if translation[w] == word]
        if not positions:
            raise ValueError(
                f"target word {t} is {word!r}, but source={source!r} has no word that "
                f"translates to it; the two are not an svo_to_sov pair."
            )
        alignment.append(positions)
    return alignment


# --- dates ------------------------------------------------------------------------------------


def _date_pair(rng) -> tuple[str, str]:
    year = int(rng.integers(1900, 2100))
    month = int(rng.integers(1, 13))
    day = int(rng.integers(1, calendar.monthrange(year, month)[1] + 1))
    return f"{year:04d}-{month:02d}-{day:02d}", f"{day} {MONTHS[month - 1]} {year}"
