"""Step 18i: text for a language model: synthetic stories, or one side of Multi30k or Tatoeba.

A language model needs sentences, not pairs. Two kinds ship with the package:

``svo`` (the default: no download, any size, any seed)
    Short *stories* in the grammar of the ``svo_to_sov`` task
    (:data:`attention.data.synthetic.SVO_LEXICON`): two to four sentences about a small cast
    of characters who come back, so the text repeats as real text does and copying what
    followed before predicts it, the pattern of induction heads (Olsson et al. 2022; notebook
    12)::

        the old king sees the red bird . the red bird follows the old king quickly .

    A fraction ``echoes`` of the documents (a fifth by default) is a random string of 4-16
    lexicon words said twice, which only copying can predict. A word-level
    :class:`Vocabulary` covers every word and ``.``.
``multi30k-en``, ``multi30k-de``, ``tatoeba-en``, ``tatoeba-de``
    One language of the translation corpora: Multi30k's image captions (29,000 / 1,014 /
    1,000 sentences) or the small Tatoeba set (4,000 / 500 / 500), with a SentencePiece
    subword tokenizer (:func:`attention.data.subword.train_subword`) trained on the training
    sentences.

>>> text = make_stories(num_stories=1, seed=0)[0]
>>> text.endswith(".") and text.split()[0] == "the"
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from attention._checks import (
    check_choice,
    check_non_negative_int,
    check_positive_int,
    check_real,
    check_repeats_args,
)
from attention.data.multi30k import load_multi30k
from attention.data.synthetic import SVO_LEXICON
from attention.data.tatoeba import load_tatoeba
from attention.data.vocab import Vocabulary

LM_CORPORA = ("svo", "multi30k-en", "multi30k-de", "tatoeba-en", "tatoeba-de")
"""The text corpora of :func:`load_sentences` (``attention train --task lm --data NAME``)."""

SPLITS = ("train", "valid", "test")

_CAST = (2, 3)  # characters per story, at least and at most
_SENTENCES = (2, 4)  # sentences per story
_P_PHRASE = 0.3  # probability that a sentence ends with a prepositional phrase
_P_ADVERB = 0.3  # ... with an adverb


def make_stories(*, num_stories: int, seed: int = 0, echoes: float = 0.2) -> list[str]:
    """``num_stories`` synthetic documents (one string each, sentences ending in `` .``).

    A story draws a cast of 2-3 characters (``the`` + 0-2 adjectives + a noun, all nouns
    different) and tells 2-4 sentences ``SUBJ VERB OBJ [PREP NP] [ADV] .`` whose subject and
    object are two different members of the cast; a prepositional phrase names a new noun.
    With probability ``echoes`` a document is instead an *echo*: 4-16 words drawn uniformly
    from the lexicon, `` .``, and the same words again, `` .``. The same arguments always give
    the same documents (NumPy's PCG64, seeded by ``seed``).

    Raises:
      TypeError, ValueError: ``num_stories`` not an int >= 0, ``echoes`` outside [0, 1].
    """
    num_stories = check_non_negative_int("num_stories", num_stories)
    echoes = check_real("echoes", echoes, low=0.0, high=1.0)
    rng = np.random.default_rng(seed)
    lexicon = [w for table in SVO_LEXICON.values() for w in table]
    nouns, verbs = list(SVO_LEXICON["noun"]), list(SVO_LEXICON["verb"])
    adjectives = list(SVO_LEXICON["adjective"])
    prepositions, adverbs = list(SVO_LEXICON["preposition"]), list(SVO_LEXICON["adverb"])

    def pick(words, k=1):
        return [words[i] for i in rng.choice(len(words), size=k, replace=False)]

    def phrase(noun):
        return ["the", *pick(adjectives, int(rng.integers(0, 3))), noun]

    stories = []
    for _ in range(num_stories):
        if rng.random() < echoes:
            said = [lexicon[i] for i in rng.integers(0, len(lexicon), int(rng.integers(4, 17)))]
            stories.append(" ".join([*said, ".", *said, "."]))
            continue
        size = int(rng.integers(_CAST[0], _CAST[1] + 1))
        names = pick(nouns, size + 1)  # the last noun is for prepositional phrases
        cast = [phrase(noun) for noun in names[:size]]
        words: list[str] = []
        for _ in range(int(rng.integers(_SENTENCES[0], _SENTENCES[1] + 1))):
            subject, obj = rng.choice(size, size=2, replace=False)
            words += [*cast[subject], *pick(verbs), *cast[obj]]
            if rng.random() < _P_PHRASE:
                words += [*pick(prepositions), *phrase(names[-1])]
            if rng.random() < _P_ADVERB:
                words += pick(adverbs)
            words.append(".")
        stories.append(" ".join(words))
    return stories


def make_repeats(
    *,
    num_docs: int,
    lengths: Sequence[int],
    num_words: int,
    seed: int = 0,
    words: Sequence[str] | None = None,
) -> list[str]:
    """``num_docs`` documents of random words that repeat: a string of ``L`` words, said again
    and again until the document has ``num_words`` words (the last copy cut short).

    ``L`` is drawn uniformly from ``lengths`` for each document, and each of its words
    uniformly (with replacement) from ``words`` (default: every word of the lexicon). Only the
    first ``L`` words are unpredictable; every later word is the one that followed the same
    word ``L`` positions back, which a model can predict only by finding that earlier
    occurrence and copying its successor, what an induction head does (Olsson et al. 2022).
    Drawing ``L`` from many values keeps a head that looks a fixed distance back from solving
    it. The same arguments give the same documents (NumPy's PCG64 seeded by ``seed``).

    Raises:
      TypeError, ValueError: ``num_docs`` not an int >= 0; ``num_words`` or a length not an
        int >= 1; no lengths; a length above ``num_words``; fewer than two words.

    >>> doc = make_repeats(num_docs=1, lengths=[3], num_words=8, seed=0)[0].split()
    >>> doc[:3] == doc[3:6] and doc[6:] == doc[:2]
    True
    """
    words = [w for t in SVO_LEXICON.values() for w in t] if words is None else list(words)
    num_docs, num_words, lengths = check_repeats_args(num_docs, num_words, lengths, words)
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(num_docs):
        said = rng.integers(0, len(words), lengths[int(rng.integers(0, len(lengths)))])
        docs.append(" ".join(words[i] for i in np.resize(said, num_words)))
    return docs


def stories_vocabulary() -> Vocabulary:
    """The word vocabulary of :func:`make_stories`: every English word of the lexicon, and
    ``.`` (built from the lexicon, so every seed shares one set of ids)."""
    words = [w for pos, table in SVO_LEXICON.items() for w in table]
    return Vocabulary([*words, "."], level="word")


def load_sentences(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    num_stories: int = 20_000,
    seed: int = 0,
) -> list[str]:
    """The sentences of one split of corpus ``name`` (see the module docstring).

    Args:
      name: one of :data:`LM_CORPORA`.
      split: ``"train"``, ``"valid"`` or ``"test"``.
      data_dir: where Multi30k or Tatoeba lie (default: ``$ATTENTION_DATA``, then the cache).
      num_stories: stories generated for ``svo`` train (valid and test get a tenth each, at
        least 64, from other seeds).
      seed: generation seed of ``svo``.

    Raises:
      ValueError: an unknown ``name`` or ``split``.
      DatasetNotFoundError: the real data is not there.
    """
    check_choice("name", name, LM_CORPORA)
    check_choice("split", split, SPLITS)
    if name == "svo":
        if split == "train":
            return make_stories(num_stories=num_stories, seed=seed)
        offset = {"valid": 10_001, "test": 20_002}[split]
        return make_stories(num_stories=max(num_stories // 10, 64), seed=seed + offset)
    corpus, language = name.split("-")
    if corpus == "multi30k":
        split = {"valid": "val", "test": "test2016"}.get(split, split)
        other = "de" if language == "en" else "en"
        pairs = load_multi30k(split, source=language, target=other, data_dir=data_dir)
        return [source for source, _ in pairs]
    other = "de" if language == "en" else "en"
    return [source for source, _ in load_tatoeba(split, source=language, target=other,
                                                 data_dir=data_dir)]


def load_english_sentences(
    data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[str]:
    """The English training text of the course: Multi30k's 29,000 training captions, then the
    4,000 English sentences of the Tatoeba training split (33,000 sentences, 370,000 words).

    Only training splits are used, so the validation and test sentences stay unseen by the
    vectors (notebook 00 builds its pair task from them).

    Args:
      data_dir: the folder that holds ``multi30k/`` and ``tatoeba_en_de_small/``; default
        ``$ATTENTION_DATA`` (see :mod:`attention.data.files`).
      limit: keep only the first ``limit`` sentences of each corpus (for a quick run).

    Raises:
      DatasetNotFoundError: the files are not there (the message says where it looked).

    >>> sentences = load_english_sentences()  # doctest: +SKIP
    >>> len(sentences), sentences[0]  # doctest: +SKIP
    (33000, 'Two young, White males are outside near many bushes.')
    """
    if limit is not None:
        limit = check_positive_int("limit", limit)
    download = data_dir is None
    multi30k = [en for _, en in load_multi30k("train", data_dir=data_dir, download=download)]
    tatoeba = [en for _, en in load_tatoeba("train", data_dir=data_dir)]
    return multi30k[:limit] + tatoeba[:limit]
