"""Vectors, steps 0-0j: does it make sense to multiply two embeddings? (notebook 00)

Before attention multiplies queries by keys, notebook 00 asks what multiplying embeddings
means: word vectors trained on the course's English, their cosine similarities, and searching
many stored vectors for the ones nearest a query. Read the modules in this order::

    0  corpus.py          the course's English as words: tokenizer, counted vocabulary
    0a skipgram.py        word2vec's skip-gram with negative sampling: the loss, the pairs
    0b word_vectors.py    WordVectors: similarity, nearest words, analogies, sentence vectors
    0c training.py        training skip-gram vectors with Adam (optax)
    0d evaluation.py      do the cosines rank word pairs as people do? (Spearman)
    0e cosine.py          cosine similarity: normalise once, then one dot product
    0f top_k.py           the k best scores exactly: chunks of rows, groups ranked first
    0g quantized.py       a database in fewer bytes: bfloat16, or int8 with row scales
    0h search.py          cosine top-k search over float and quantized databases, reranking
    0i kmeans.py          spherical k-means: cells of vectors that point the same way
    0j inverted_index.py  reading less: only the rows of the cells nearest the query
                          (FAISS's IndexIVFFlat)

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
