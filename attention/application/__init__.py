"""The application, steps 28-30: translation and language modelling end to end, runs, the CLI.

Read the modules in this order::

    reading-map:start (python -m attention._reading_map --write)
    28   translation.py        translation end to end: data -> tokenizer -> batches -> model ->
                               translations.
    28a  language_modeling.py  a language model end to end: texts -> tokenizer -> packed windows ->
                               model -> text.
    28b  pretrained.py         a real checkpoint from the command line: its continuations and its
                               attention view.
    29   runs.py               a run, trained, saved and loaded back: the one pipeline behind every
                               trained model.
    29a  course.py             the course's models: the recipes notebooks 07-09 and 12 train, or
                               load if saved.
    29b  view.py               ``attention view``, a translation's (or a text's) attention as one
                               HTML file.
    30   cli.py                ``attention``, the command line: train a model, translate, generate,
                               evaluate.
    reading-map:end
"""

from attention.application.course import (
    course_run,
    induction_course_run,
    lm_course_run,
    load_or_train_course_model,
    load_or_train_induction_course_model,
    load_or_train_lm_course_model,
    train_course_model,
)
from attention.application.language_modeling import (
    TextCorpus,
    generate_text,
    load_text_corpus,
    perplexity,
)
from attention.application.runs import (
    Run,
    load_run,
    new_run,
    resume_run,
    save_run,
    train_run,
)
from attention.application.translation import (
    DATA_NAMES,
    REAL_DATA,
    Corpus,
    bleu_signature,
    corpus_bleu,
    exact_match,
    load_corpus,
    pair_attention,
    translate,
)

__all__ = [
    "TextCorpus",
    "generate_text",
    "load_text_corpus",
    "perplexity",
    "Corpus",
    "DATA_NAMES",
    "REAL_DATA",
    "load_corpus",
    "translate",
    "pair_attention",
    "corpus_bleu",
    "bleu_signature",
    "exact_match",
    "Run",
    "new_run",
    "train_run",
    "resume_run",
    "save_run",
    "load_run",
    "course_run",
    "train_course_model",
    "load_or_train_course_model",
    "lm_course_run",
    "load_or_train_lm_course_model",
    "induction_course_run",
    "load_or_train_induction_course_model",
]
