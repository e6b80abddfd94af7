"""Step 18: the data, sentence pairs, tokenizers and batches for training a translation model.

Read the modules in this order::

    synthetic.py  toy tasks made on the spot: copy, reverse, svo_to_sov (reordering), dates
    files.py      finding, downloading, verifying (SHA-256) and reading data files
    multi30k.py   Multi30k German-English (29,000 / 1,014 / 1,000 pairs)
    tatoeba.py    a small Tatoeba English-German set (4,000 / 500 / 500 pairs)
    tokenizer.py  the Tokenizer interface and the special ids pad=0 bos=1 eos=2 unk=3
    vocab.py      a word or character vocabulary (for the toy tasks)
    subword.py    a SentencePiece subword model trained on the training pairs (for real text),
                  and load_tokenizer, which reads either kind of tokenizer back
    batching.py   length-bucketed, padded, reproducible and resumable batches
    prefetching.py  preparing batches in a background thread
    lm_corpus.py  text for the language model: synthetic stories, one side of Multi30k/Tatoeba
    packing.py    documents packed into fixed windows for language modelling (nanoGPT-style)

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
from attention.data.lm_corpus import LM_CORPORA, load_sentences, make_stories
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
