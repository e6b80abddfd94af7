"""Vectors, steps 0-0j: does it make sense to multiply two embeddings? (notebooks 00, 15)

Before attention multiplies queries by keys, notebook 00 asks what multiplying embeddings
means: word vectors trained on the course's English, their cosine similarities, and searching
many stored vectors for the ones nearest a query. Read the modules in this order::

    reading-map:start (python -m attention._reading_map --write)
    0   corpus.py          the course's English as words: a corpus, a word tokenizer and a counted
                           vocabulary.
    0a  skipgram.py        skip-gram with negative sampling, word2vec's model: its loss and its
                           training pairs.
    0b  word_vectors.py    word vectors, a table of words and their vectors, and the questions it
                           answers.
    0c  training.py        training skip-gram word vectors on English sentences, with Adam.
    0d  evaluation.py      evaluating word vectors: do their cosines rank word pairs as people do?
    0e  cosine.py          cosine similarity, the dot product of two vectors scaled to length 1.
    0f  top_k.py           the k best of many scores, exactly, without holding or ranking them all.
    0g  quantized.py       a database stored in fewer bytes: bfloat16, or int8 with one scale per
                           row.
    0h  search.py          cosine top-k search: which stored vectors point the same way as a query?
    0i  kmeans.py          spherical k-means, the cells of a database around the centroids nearest
                           its rows.
    0j  inverted_index.py  an inverted-file index, which searches a few cells of the database, not
                           every row.
    reading-map:end

Step 1, :mod:`attention.mechanism.scores`, starts attention from the same dot product.
"""

from attention.data.lm_corpus import load_english_sentences
from attention.vectors.corpus import build_vocabulary, tokenize_words
from attention.vectors.cosine import normalize
from attention.vectors.evaluation import (
    WORD_SIMILARITY_FILES,
    WORD_SIMILARITY_PAIRS,
    SimilarityScore,
    evaluate_similarity,
    load_word_similarity,
    spearman_correlation,
)
from attention.vectors.inverted_index import (
    TRAIN_POINTS_PER_CELL,
    InvertedIndex,
    build_inverted_index,
    inverted_index_top_k,
)
from attention.vectors.kmeans import assign_to_cells, spherical_kmeans
from attention.vectors.quantized import (
    QUANTIZED_DTYPES,
    QuantizedDatabase,
    dequantize,
    quantize_database,
)
from attention.vectors.search import cosine_top_k, cosine_top_k_reference
from attention.vectors.skipgram import (
    keep_probabilities,
    noise_distribution,
    skipgram_loss,
    skipgram_pairs,
)
from attention.vectors.training import train_word_vectors
from attention.vectors.word_vectors import WordVectors, sentence_vectors

__all__ = [
    # 0 corpus
    "load_english_sentences",
    "tokenize_words",
    "build_vocabulary",
    # 0a skip-gram
    "noise_distribution",
    "keep_probabilities",
    "skipgram_pairs",
    "skipgram_loss",
    # 0b word vectors
    "WordVectors",
    "sentence_vectors",
    # 0c training
    "train_word_vectors",
    # 0d evaluation
    "WORD_SIMILARITY_PAIRS",
    "WORD_SIMILARITY_FILES",
    "load_word_similarity",
    "spearman_correlation",
    "SimilarityScore",
    "evaluate_similarity",
    # 0e cosine
    "normalize",
    # 0g quantized storage
    "QUANTIZED_DTYPES",
    "QuantizedDatabase",
    "quantize_database",
    "dequantize",
    # 0h search
    "cosine_top_k",
    "cosine_top_k_reference",
    # 0i spherical k-means
    "spherical_kmeans",
    "assign_to_cells",
    # 0j inverted-file index
    "TRAIN_POINTS_PER_CELL",
    "InvertedIndex",
    "build_inverted_index",
    "inverted_index_top_k",
]
