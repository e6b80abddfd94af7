"""Skip-gram word vectors: the loss and its gradients, the paper's sampling formulas, training on
a corpus with planted co-occurrences, the searches, saving, and the errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attention.data import word_vectors as wv
from attention.data.word_vectors import WordVectors


def _loss_numpy(center, context, negatives):
    """Mikolov et al. (2013), eq. 4, written out: -log s(u_o . v_c) - sum log s(-u_k . v_c)."""
    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    positive = np.sum(center * context, axis=1)
    negative = np.sum(center[:, None, :] * negatives, axis=2)
    return -log_sigmoid(positive) - np.sum(log_sigmoid(-negative), axis=1)


def test_loss_matches_the_formula_written_out():
    rng = np.random.default_rng(0)
    B, k, D = 3, 5, 7
    center, context = rng.normal(size=(B, D)), rng.normal(size=(B, D))
    negatives = rng.normal(size=(B, k, D))
    got = wv.skipgram_loss(*(jnp.asarray(x, jnp.float32) for x in (center, context, negatives)))
    assert got.shape == (B,)
    np.testing.assert_allclose(got, _loss_numpy(center, context, negatives), rtol=1e-5)


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    B, k, D = 2, 3, 5
    with jax.enable_x64(True):
        args = [jnp.asarray(rng.normal(size=s), jnp.float64) for s in ((B, D), (B, D), (B, k, D))]

        def total(*xs):
            return jnp.sum(wv.skipgram_loss(*xs))

        grads = jax.grad(total, argnums=(0, 1, 2))(*args)
        h = 1e-6
        for which, (x, g) in enumerate(zip(args, grads, strict=True)):
            flat = np.asarray(x).ravel()
            numeric = np.empty_like(flat)
            for i in range(flat.size):
                step = np.zeros_like(flat)
                step[i] = h
                plus, minus = list(args), list(args)
                plus[which] = jnp.asarray((flat + step).reshape(x.shape))
                minus[which] = jnp.asarray((flat - step).reshape(x.shape))
                numeric[i] = (float(total(*plus)) - float(total(*minus))) / (2 * h)
            np.testing.assert_allclose(np.asarray(g).ravel(), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.outside_annotations
def test_loss_rejects_shapes_that_disagree():
    with pytest.raises(ValueError, match=r"got \[2, 3\], \[2, 4\] and \[2, 5, 3\]"):
        wv.skipgram_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)), jnp.zeros((2, 5, 3)))


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([7, 2, 11, 3, 5])
    weights = np.array([c ** 0.75 for c in counts.tolist()])
    np.testing.assert_allclose(wv.noise_distribution(counts), weights / weights.sum())
    np.testing.assert_allclose(wv.noise_distribution(counts, power=1.0), counts / counts.sum())
    assert math.isclose(wv.noise_distribution(counts).sum(), 1.0)
    with pytest.raises(ValueError, match="positive counts"):
        wv.noise_distribution(np.array([3, 0, 2]))


def test_keep_probabilities_follow_the_papers_formula():
    counts = np.array([500, 120, 30, 7, 1])
    t = 0.02
    frequency = counts / counts.sum()
    discard = [1 - math.sqrt(t / f) if f > t else 0.0 for f in frequency.tolist()]
    np.testing.assert_allclose(wv.keep_probabilities(counts, t), 1 - np.array(discard))
    with pytest.raises(ValueError, match=r"threshold must be in \(0, inf\), got 0.0"):
        wv.keep_probabilities(counts, 0.0)


def test_pairs_are_the_window_within_each_sentence():
    sentences = [np.array([0, 1, 2]), np.array([3, 4])]
    keep = np.ones(5)
    centers, contexts = wv.skipgram_pairs(sentences, keep, window=1, rng=np.random.default_rng(0))
    got = sorted(zip(centers.tolist(), contexts.tolist(), strict=True))
    assert got == [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)]  # never (2, 3) across
    # Subsampling: a word kept with probability 0 never appears in a pair.
    keep[1] = 0.0
    centers, contexts = wv.skipgram_pairs(sentences, keep, window=2, rng=np.random.default_rng(0))
    assert 1 not in set(centers.tolist()) | set(contexts.tolist())
    assert (0, 2) in set(zip(centers.tolist(), contexts.tolist(), strict=True))  # 1 removed first


def test_tokenizer_and_vocabulary():
    assert wv.tokenize_words("Two DOGS, a man's hat!") == ["two", "dogs", "a", "man's", "hat"]
    words, counts = wv.build_vocabulary([["b", "a", "b"], ["c", "a", "b", "d"]], min_count=2)
    assert words == ("b", "a") and counts.tolist() == [3, 2]


def _planted_corpus(seed=0, sentences=600):
    """Six topics, each with five context words (c{t}_{j}) and two planted words a{t}, b{t}
    that appear only among their own topic's context words, plus filler shared by all: a and b
    of one topic share their contexts (the distributional hypothesis), those of two topics do
    not."""
    rng = np.random.default_rng(seed)
    text = []
    for _ in range(sentences):
        t = int(rng.integers(0, 6))
        tokens = [f"c{t}_{j}" for j in rng.permutation(5)[:4]]
        tokens += [f"filler{n}" for n in rng.integers(0, 10, size=2)]
        tokens = [tokens[i] for i in rng.permutation(len(tokens))]
        tokens.insert(int(rng.integers(0, len(tokens) + 1)), f"{'ab'[rng.integers(0, 2)]}{t}")
        text.append(" ".join(tokens))
    return text


def test_training_places_planted_pairs_closer_than_random_pairs():
    vectors = wv.train_word_vectors(_planted_corpus(), dim=16, window=3, negatives=5,
                                    min_count=1, subsample=1.0, epochs=4, batch_size=256,
                                    learning_rate=0.02, seed=0)
    planted = [vectors.similarity(f"a{t}", f"b{t}") for t in range(6)]
    across = [vectors.similarity(f"a{t}", f"b{s}") for t in range(6) for s in range(6) if s != t]
    margin = np.mean(planted) - np.mean(across)
    assert margin > 0.3, (planted, np.mean(across))
    assert min(planted) > max(across), (planted, max(across))
    losses = vectors.meta["epoch_losses"]
    assert losses[-1] < losses[0], losses


def _toy(V=11, D=5, seed=0):
    rng = np.random.default_rng(seed)
    words = tuple(f"word{i}" for i in range(V))
    return WordVectors(words, rng.normal(size=(V, D)).astype(np.float32),
                       np.arange(V, 0, -1), {"min_count": 1})


def _cosines(vectors, query):
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    return unit @ (query / np.linalg.norm(query))


def test_nearest_and_analogy_match_brute_force_cosines():
    vectors = _toy()
    scores = _cosines(vectors, vectors.vector("word3"))
    order = [i for i in np.argsort(-scores).tolist() if i != 3][:4]
    got = vectors.nearest("word3", 4)
    assert [w for w, _ in got] == [f"word{i}" for i in order]
    np.testing.assert_allclose([s for _, s in got], scores[order], rtol=1e-5)
    unit = {w: vectors.vector(w) / np.linalg.norm(vectors.vector(w)) for w in vectors.words}
    offset = unit["word2"] - unit["word1"] + unit["word5"]
    scores = _cosines(vectors, offset)
    order = [i for i in np.argsort(-scores).tolist() if i not in (1, 2, 5)][:3]
    assert [w for w, _ in vectors.analogy("word1", "word2", "word5", 3)] == [
        f"word{i}" for i in order]
    assert math.isclose(vectors.similarity("word0", "word4"),
                        float(_cosines(vectors, vectors.vector("word4"))[0]), rel_tol=1e-5)


def test_save_load_round_trip_and_refusing_to_overwrite(tmp_path):
    vectors = _toy()
    path = vectors.save(tmp_path / "sub" / "vectors.npz")
    loaded = WordVectors.load(path)
    assert loaded.words == vectors.words and loaded.meta == vectors.meta
    np.testing.assert_array_equal(loaded.vectors, vectors.vectors)
    np.testing.assert_array_equal(loaded.counts, vectors.counts)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
        _toy(seed=1).save(path)
    assert path.read_bytes() == before
    _toy(seed=1).save(path, overwrite=True)
    np.testing.assert_array_equal(WordVectors.load(path).vectors, _toy(seed=1).vectors)
    assert [p.name for p in path.parent.iterdir()] == ["vectors.npz"]  # no temporary left


def test_errors_name_what_was_wrong():
    vectors = _toy()
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        vectors.vector("zebra")
    with pytest.raises(KeyError, match="'zebra'"):
        vectors.analogy("word1", "zebra", "word2")
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.10 .* got k=11"):
        vectors.nearest("word0", 11)
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.8 .* got k=9"):
        vectors.analogy("word0", "word1", "word2", 9)
    with pytest.raises(ValueError, match=r"\[D\] vector with D=5, got shape \[4\]"):
        vectors.nearest(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="the corpus is empty: 2 sentences"):
        wv.train_word_vectors(["", "?!"])
    with pytest.raises(ValueError, match="no word occurs at least min_count=5 times"):
        wv.train_word_vectors(["a dog", "a cat"])
    with pytest.raises(ValueError, match="dim must be a positive int, got 0"):
        wv.train_word_vectors(["a dog"], dim=0)


@pytest.mark.outside_annotations
def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match=r"dim must be a positive int, got 1.5 \(float\)"):
        wv.train_word_vectors(["a dog"], dim=1.5)
    with pytest.raises(TypeError, match="word must be a str, got 3"):
        _toy().vector(3)
    with pytest.raises(ValueError, match=r"vectors must be \[V, D\] and counts \[V\] with V=2"):
        WordVectors(("a", "b"), np.zeros((3, 4), np.float32), np.ones(2, np.int64))
    with pytest.raises(TypeError, match="one str"):
        wv.train_word_vectors("a dog runs")


def test_spearman_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=13).astype(float)  # with ties
    y = x + rng.normal(size=13)
    assert math.isclose(wv.spearman_correlation(x, y), stats.spearmanr(x, y).statistic,
                        rel_tol=1e-9)
    with pytest.raises(ValueError, match="constant"):
        wv.spearman_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_word_similarity_lists(tmp_path):
    path = tmp_path / "list.tsv"
    path.write_text("# a comment\nword0\tWord3\t7.5\nword1\tword2\t1.0\nword4\tword9\t3\n"
                    "word0\tunknown\t5\n")
    pairs = wv.load_word_similarity("simlex999", path)
    assert pairs[0] == ("word0", "word3", 7.5) and len(pairs) == 4
    score = wv.evaluate_similarity(_toy(), pairs)
    assert (score.pairs, score.missing) == (3, 1)
    vectors = _toy()
    cosines = [vectors.similarity(a, b) for a, b, _ in pairs[:3]]
    assert math.isclose(score.spearman, wv.spearman_correlation(cosines, [7.5, 1.0, 3.0]))
    path.write_text("word0 word3 7.5\n")
    with pytest.raises(ValueError, match="line 1: expected 'word<TAB>word<TAB>rating'"):
        wv.load_word_similarity("wordsim353", path)
    with pytest.raises(ValueError, match="name must be one of"):
        wv.load_word_similarity("men3000")


def test_sentence_vectors_are_means_of_known_words():
    vectors = _toy()
    got = wv.sentence_vectors(vectors, ["word1 Word4 zebra", "zebra"])
    np.testing.assert_allclose(got[0], (vectors.vector("word1") + vectors.vector("word4")) / 2,
                               rtol=1e-6)
    np.testing.assert_array_equal(got[1], np.zeros(5))


def test_the_english_corpus(shared_data):
    sentences = wv.load_english_sentences(shared_data)
    assert len(sentences) == 29_000 + 4_000
    assert len(wv.load_english_sentences(shared_data, limit=10)) == 20
