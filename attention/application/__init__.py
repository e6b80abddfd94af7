"""The application, steps 28-30: translation and language modelling end to end, runs, the CLI.

Read the modules in this order::

    28  translation.py  corpora, translating sentences, attention maps of a pair, BLEU
    28a language_modeling.py  text corpora, perplexity, generating text (the decoder-only LM)
    29  runs.py         a run: train it, save it, load it back (the CLI, notebooks 07-09 and
                        scripts/make_figures.py all use it)
    29a course.py       the course's models: the recipes the notebooks train or load
    29b view.py         ``attention view``: a translation's attention as one HTML page
    30  cli.py          ``attention train | translate | evaluate | generate | view | grade``
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
