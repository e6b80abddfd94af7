"""Synthetic tasks: determinism, and each task does what its docstring says.

The svo_to_sov rule is checked against a second implementation written here from the
docstring's grammar (a regular expression over part-of-speech tags, not the module's parser),
which is itself checked on an example translated by hand.
"""

import datetime
import re

import pytest

from attention.data import TASKS, make_task, task_vocabulary
from attention.data.synthetic import SVO_LEXICON

MONTHS = "January February March April May June July August September October November December"


def reference_svo_to_sov(source: str) -> str:
    words = source.split()
    pos = {w: p for p, table in SVO_LEXICON.items() for w in table}
    tag = {
        "article": "A",
        "adjective": "J",
        "noun": "N",
        "verb": "V",
        "preposition": "P",
        "adverb": "D",
    }
    tags = "".join(tag[pos[w]] for w in words)
    match = re.fullmatch(r"(AJ*N)(V)(AJ*N)(?:(P)(AJ*N))?(D)?", tags)
    assert match, f"{source!r} does not follow the source grammar"
    translate = {w: t for table in SVO_LEXICON.values() for w, t in table.items()}

    def span(group):
        start, end = match.span(group)
        return words[start:end]

    def noun_phrase(group):  # the ADJ* NOUN -> NOUN ADJ* ta
        the, *adjectives, noun = span(group)
        return [noun, *adjectives, the]

    target = noun_phrase(1) + noun_phrase(3)
    if match.group(4):
        target += noun_phrase(5) + span(4)
    if match.group(6):
        target += span(6)
    target += span(2)
    return " ".join(translate[w] for w in target)


def test_reference_rule_on_hand_translated_examples():
    # Translated by hand from the docstring's rule and the lexicon.
    assert reference_svo_to_sov("the dog sees the cat") == "doro ta kima ta miru"
    assert (
        reference_svo_to_sov("the big dog sees the small cat with the red ball quickly")
        == "doro gana ta kima piti ta lupa roza ta kon rapi miru"
    )
    assert (
        reference_svo_to_sov("the old tall king feeds the horse slowly")
        == "gumo vesa alto ta bafo ta lenta yoba"
    )


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_pairs_other_seed_other_pairs(name):
    first = make_task(name, num_examples=40, seed=7)
    assert first == make_task(name, num_examples=40, seed=7)
    assert first != make_task(name, num_examples=40, seed=8)
    assert len(first) == 40 and all(isinstance(s, str) and isinstance(t, str) for s, t in first)


def test_copy_and_reverse():
    for name, expect in (("copy", lambda w: w), ("reverse", lambda w: w[::-1])):
        pairs = make_task(name, num_examples=300, seed=1, min_len=3, max_len=7)
        lengths = {len(s.split()) for s, _ in pairs}
        assert lengths == {3, 4, 5, 6, 7}  # every length in range occurs, no other
        for source, target in pairs:
            assert target.split() == expect(source.split())


def test_svo_to_sov_follows_the_grammar_and_moves_the_verb_to_the_end():
    pairs = make_task("svo_to_sov", num_examples=300, seed=3)
    verbs = SVO_LEXICON["verb"]
    for source, target in pairs:
        assert target == reference_svo_to_sov(source)
        assert len(target.split()) == len(source.split())
        source_verb = next(w for w in source.split() if w in verbs)
        assert target.split()[-1] == verbs[source_verb]  # the alignment is not diagonal
    assert {len(s.split()) for s, _ in pairs} == set(range(5, 16))


def test_svo_to_sov_lengths_and_limits():
    pairs = make_task("svo_to_sov", num_examples=100, seed=0, min_len=9, max_len=11)
    assert {len(s.split()) for s, _ in pairs} == {9, 10, 11}
    with pytest.raises(ValueError, match=r"5 to 15 words.*got min_len=3, max_len=15"):
        make_task("svo_to_sov", num_examples=1, min_len=3)
    with pytest.raises(ValueError, match="got min_len=6, max_len=16"):
        make_task("svo_to_sov", num_examples=1, min_len=6, max_len=16)


def test_dates_are_valid_and_reformatted():
    months = MONTHS.split()
    for source, target in make_task("dates", num_examples=300, seed=5):
        date = datetime.date.fromisoformat(source)  # raises on an impossible date
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source)
        assert target == f"{date.day} {months[date.month - 1]} {date.year}"
        assert 1900 <= date.year <= 2099


def test_task_vocabulary_covers_every_pair_without_unknowns():
    for name in TASKS:
        vocab = task_vocabulary(name)
        for source, target in make_task(name, num_examples=200, seed=11):
            for text in (source, target):
                ids = vocab.encode(text)
                assert vocab.unk_id not in ids
                assert vocab.decode(ids) == text
    assert task_vocabulary("dates").level == "char"


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"name must be one of .* got 'sort'"):
        make_task("sort", num_examples=3)
    with pytest.raises(ValueError, match="num_examples must be an int >= 0, got -1"):
        make_task("copy", num_examples=-1)
    with pytest.raises(ValueError, match="min_len=5, max_len=4"):
        make_task("copy", num_examples=3, min_len=5, max_len=4)
    with pytest.raises(ValueError, match="dates task has fixed lengths"):
        make_task("dates", num_examples=3, max_len=8)
