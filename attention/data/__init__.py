"""The data, steps 18-18j: sentence pairs, texts, tokenizers and batches to train a model on.

Read the modules in this order (the reading map of the whole package is in the README and in
:mod:`attention`; this list is generated from the modules' first lines)::

    reading-map:start (python -m attention._reading_map --write)
    18   tokenizer.py    what every tokenizer in this package promises: text in, integer ids out,
                         and back.
    18a  vocab.py        a word (or character) vocabulary, the simplest tokenizer, for the synthetic
                         tasks.
    18b  synthetic.py    synthetic translation tasks, generated on the spot: no download, any size,
                         any seed.
    18c  files.py        where data files live, whether they are intact, and how their text is read.
    18d  multi30k.py     Multi30k, 31,014 English image captions with professional German
                         translations.
    18e  tatoeba.py      Tatoeba English-German, small: 5,000 short everyday sentence pairs, a
                         1-minute run.
    18f  subword.py      subword tokenization with SentencePiece, for real text.
    18g  batching.py     batches of padded token ids, bucketed by length, reproducible and
                         resumable.
    18h  prefetching.py  prefetching, the next batches made in a background thread while the device
                         computes.
    18i  lm_corpus.py    text for a language model: synthetic stories, or one side of Multi30k or
                         Tatoeba.
    18j  packing.py      batches for a language model, sentences packed end to end and cut into
                         fixed windows.
    reading-map:end

A whole pipeline, for a toy task::

    from attention import data

    pairs = data.make_task("svo_to_sov", num_examples=10_000, seed=0)
    vocab = data.task_vocabulary("svo_to_sov")
    batcher = data.Batcher(data.encode_pairs(pairs, vocab), batch_size=64, seed=0)
    for batch in data.prefetch(batcher.epoch(0)):
        ...  # batch["src"] [B, S], batch["tgt_in"] [B, T], batch["tgt_out"] [B, T]

and for real text::

    train = data.load_multi30k("train")                     # [(German, English), ...]
    tokenizer = data.train_subword([s for pair in train for s in pair], vocab_size=8000)
    tokenizer.save("checkpoints/subword.model")             # beside the model's checkpoint
"""

from attention.data.batching import Batch, Batcher, encode_pairs, make_batches
from attention.data.files import (
    ChecksumError,
    DatasetNotFoundError,
    cache_dir,
    normalize_whitespace,
    sha256_file,
)
from attention.data.lm_corpus import (
    LM_CORPORA,
    load_english_sentences,
    load_sentences,
    make_stories,
)
from attention.data.multi30k import download_multi30k, load_multi30k
from attention.data.packing import PackedBatcher, pack
from attention.data.prefetching import prefetch
from attention.data.subword import SubwordTokenizer, load_tokenizer, train_subword
from attention.data.synthetic import (
    TASK_LEVELS,
    TASKS,
    make_task,
    svo_alignment,
    task_vocabulary,
)
from attention.data.tatoeba import load_tatoeba
from attention.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer
from attention.data.vocab import Vocabulary

__all__ = [
    "LM_CORPORA",
    "load_sentences",
    "load_english_sentences",
    "make_stories",
    "PackedBatcher",
    "pack",
    "TASKS",
    "TASK_LEVELS",
    "make_task",
    "task_vocabulary",
    "svo_alignment",
    "load_multi30k",
    "download_multi30k",
    "load_tatoeba",
    "ChecksumError",
    "DatasetNotFoundError",
    "cache_dir",
    "sha256_file",
    "normalize_whitespace",
    "PAD_ID",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "Tokenizer",
    "load_tokenizer",
    "Vocabulary",
    "SubwordTokenizer",
    "train_subword",
    "Batch",
    "Batcher",
    "encode_pairs",
    "make_batches",
    "prefetch",
]
