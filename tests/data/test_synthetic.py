"""Synthetic tasks: determinism, and each task does what its docstring says.

The svo_to_sov rule is checked against a second implementation written here from the
docstring's grammar (a regular expression over part-of-speech tags, not the module's parser),
which is itself checked on an example translated by hand. The same regular expression gives
the word order of the translation as source positions, which svo_alignment must agree with.
"""

import datetime
import re

import pytest

from attention.data import TASKS, make_task, task_vocabulary
from attention.data.synthetic import SVO_LEXICON, svo_alignment

MONTHS = "January February March April May June July August September October November December"


def reference_svo_order(source: str) -> list[int]:
    """The source positions in target order: target word t translates source word order[t]."""
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

    def span(group):
        start, end = match.span(group)
        return list(range(start, end))

    def noun_phrase(group):  # the ADJ* NOUN -> NOUN ADJ* ta
        the, *adjectives, noun = span(group)
        return [noun, *adjectives, the]

    order = noun_phrase(1) + noun_phrase(3)
    if match.group(4):
        order += noun_phrase(5) + span(4)
    if match.group(6):
        order += span(6)
    return order + span(2)


def reference_svo_to_sov(source: str) -> str:
    words = source.split()
    translate = {w: t for table in SVO_LEXICON.values() for w, t in table.items()}
    return " ".join(translate[words[s]] for s in reference_svo_order(source))


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


@pytest.mark.outside_annotations
def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"name must be one of .* got 'sort'"):
        make_task("sort", num_examples=3)
    with pytest.raises(ValueError, match="num_examples must be a non-negative int, got -1"):
        make_task("copy", num_examples=-1)
    with pytest.raises(TypeError, match=r"num_examples must be a non-negative int, got 2.0"):
        make_task("copy", num_examples=2.0)
    with pytest.raises(TypeError, match=r"min_len must be an int, got True \(bool\)"):
        make_task("copy", num_examples=3, min_len=True)
    with pytest.raises(ValueError, match="min_len=5, max_len=4"):
        make_task("copy", num_examples=3, min_len=5, max_len=4)
    with pytest.raises(ValueError, match="dates task has fixed lengths"):
        make_task("dates", num_examples=3, max_len=8)


def test_svo_alignment_on_a_hand_aligned_pair():
    # the(0) big(1) dog(2) sees(3) the(4) big(5) cat(6): "big" twice, so both positions.
    source, target = "the big dog sees the big cat", "doro gana ta kima gana ta miru"
    assert reference_svo_to_sov(source) == target
    assert svo_alignment(source, target) == [[2], [1, 5], None, [6], [1, 5], None, [3]]
    assert svo_alignment("", "") == []


def test_svo_alignment_points_each_target_word_at_its_source_word():
    translate = {w: t for table in SVO_LEXICON.values() for w, t in table.items()}
    pairs = make_task("svo_to_sov", num_examples=300, seed=13)
    repeated = 0
    for source, target in pairs:
        words, target_words = source.split(), target.split()
        order = reference_svo_order(source)
        alignment = svo_alignment(source, target)
        assert len(alignment) == len(target_words)
        for t, (word, positions) in enumerate(zip(target_words, alignment, strict=True)):
            if word == "ta":
                assert positions is None
                continue
            # The position the grammar moved this word from is among them, and every one of
            # them holds a source word that translates to it.
            assert order[t] in positions
            assert all(translate[words[s]] == word for s in positions)
            assert positions == sorted(set(positions))
            count = sum(translate[w] == word for w in words)
            assert len(positions) == count
            repeated += count > 1
    assert repeated > 0  # some sentences repeat an adjective: the lists can be longer than 1


@pytest.mark.outside_annotations
def test_svo_alignment_errors_name_the_word():
    with pytest.raises(ValueError, match=r"target word 1 is 'blorp', which is not a target word"):
        svo_alignment("the dog sees the cat", "doro blorp ta kima ta miru")
    with pytest.raises(ValueError, match=r"target word 0 is 'dog'"):
        svo_alignment("the dog sees the cat", "dog ta kima ta miru")
    with pytest.raises(ValueError, match=r"source word 1 is 'dgo', which is not a source word"):
        svo_alignment("the dgo sees the cat", "doro ta kima ta miru")
    with pytest.raises(ValueError, match=r"target word 2 is 'lupa', but source=.* has no word"):
        svo_alignment("the dog sees the cat", "doro ta lupa ta miru")
    with pytest.raises(TypeError, match="target must be a string of words, got list"):
        svo_alignment("the dog sees the cat", ["doro", "ta"])
