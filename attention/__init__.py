"""attention: transformer attention built step by step in JAX and Flax NNX.

The subpackages are the layers of the project, in the order a student meets them; inside each,
the modules are numbered steps, one concept per file, each building on the steps before it and
never on a later one. Each step's number heads its module's docstring (``Step 7a: ...``), and
the notebooks' titles name the steps they teach. The reading map below, and the README's, are
generated from those lines (``python -m attention._reading_map --write``; the tests fail while
they are out of date)::

    reading-map:start
    vectors/       steps 0-0j     notebooks 00, 15
        Vectors: does it make sense to multiply two embeddings? (notebooks 00, 15)
        0 corpus  0a skipgram  0b word_vectors  0c training  0d evaluation  0e cosine  0f top_k
        0g quantized  0h search  0i kmeans  0j inverted_index
    mechanism/     steps 1-7      notebooks 01-04, 09, 11, 14
        The attention mechanism: from a dot product to multi-head attention and its heirs.
        1 scores  1a bounded_scores  2 masks  3 softmax  3a sink_logits  4 weights  5 weighted_sum
        6 scaled_dot_product  6a output_gate  7 multi_head  7a kv_cache  7e streaming_cache
        7f differential  7g latent  7h linear
    model/         steps 8-17f    notebooks 05-06, 09, 11-14
        The transformer around attention (Vaswani et al. 2017; notebooks 05, 06, 09, 12).
        8 positional  9 embeddings  10 feed_forward  10a precision  11 config  12 layer_norm
        12a dropout  12b residual  13 sublayers  13a variants  14 encoder  15 decoder  15a spine
        16 transformer  17 generation  17a decoding  17b language_model  17c sampling
        17d checkpoint_folder  17e pretrained  17f streaming
    data/          steps 18-18j   notebook 07
        The data: sentence pairs, texts, tokenizers and batches to train a model on.
        18 tokenizer  18a vocab  18b synthetic  18c files  18d multi30k  18e tatoeba  18f subword
        18g batching  18h prefetching  18i lm_corpus  18j packing
    training/      steps 19-23    notebook 07
        Training: the paper's recipe (section 5) on one device or many (notebook 07).
        19 schedule  20 loss  21 train  22 parallel  23 checkpoint
    inspection/    steps 24-26    notebooks 08, 13
        Inspection: what a model's attention heads do, in numbers and pictures.
        24 analysis  24a heads  25 plotting  26 explorer  26a views
    kernels/       steps 27-27e   notebook 10
        Fast attention kernels, a ladder from the reference to flash attention.
        27a fused  27b blockwise  27c flash  27d pallas_flash  27e select
    application/   steps 28-30    notebook 12
        The application: translation and language modelling end to end, runs, the CLI.
        28 translation  28a language_modeling  28b pretrained  29 runs  29a course  29b view  30 cli
    comprehension/
        Comprehension checks of the notebook course (notebooks 00-15): questions that check.
    exercises/
        Classroom exercises with automatic feedback.
    reading-map:end

Every public name below is importable from the package root (``attention.Transformer``); the
rest from its module (``attention.training.train.fit``).

Axis glossary (BTNH, the order of ``jax.nn.dot_product_attention``)::

    B  batch                 T  query length (target)   S  key length (source)
    N  heads (h)             H  head dim (d_k, d_v)     D  model width (d_model)
    K  key/value heads (grouped-query: K divides N; K = N in the paper)
    V  vocabulary size       F  feed-forward width (d_ff)   L  layers

Shapes are written in square brackets, ``[B, T, N, H]``, in docstrings, and as suffixes
(``scores_BNTS``) on intermediate names.

Importing the package turns on JAX's persistent compilation cache, so that a re-run compiles
nothing it compiled before (``attention/_runtime.py``; ``ATTENTION_COMPILATION_CACHE=0`` turns
it off).
"""

# First: importing _runtime turns the compilation cache on before anything is compiled.
from attention._runtime import COMPILATION_CACHE_DIR  # noqa: F401
from attention.inspection.analysis import (
    alignment_accuracy,
    head_entropy,
    mean_attention_distance,
)
from attention.inspection.plotting import (
    plot_alignment,
    plot_attention,
    plot_head_summary,
    plot_heads,
    plot_layers,
    plot_training_curves,
    plot_translation_attention,
)
from attention.inspection.views import (
    AttentionView,
    attention_section,
    head_view,
    model_view,
    translation_view,
)
from attention.kernels import flash_attention, get_attention_fn
from attention.mechanism.bounded_scores import QKNorm, head_norm, soft_cap
from attention.mechanism.masks import (
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
    seq_lengths_mask,
)
from attention.mechanism.multi_head import MultiHeadAttention, merge_heads, split_heads
from attention.mechanism.output_gate import gate_output
from attention.mechanism.scaled_dot_product import dot_product_attention, single_head_attention
from attention.mechanism.scores import default_scale, dot_product_scores, repeat_kv_heads
from attention.mechanism.sink_logits import softmax_with_sink
from attention.mechanism.softmax import masked_softmax
from attention.mechanism.weighted_sum import weighted_sum
from attention.mechanism.weights import attention_weights
from attention.model.config import TransformerConfig
from attention.model.decoding import beam_search, greedy_decode, sample_decode
from attention.model.language_model import LanguageModel, language_model_attention_maps
from attention.model.layer_norm import layer_norm, rms_norm
from attention.model.positional import (
    ALiBi,
    RotaryEmbedding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    sinusoidal_positions,
)
from attention.model.pretrained import from_pretrained
from attention.model.sampling import generate, sampling_log_probs
from attention.model.transformer import Transformer, attention_maps, count_params
from attention.vectors import (
    WordVectors,
    build_inverted_index,
    cosine_top_k,
    inverted_index_top_k,
    load_english_sentences,
    normalize,
    quantize_database,
    train_word_vectors,
)

__all__ = [
    # step 0: vectors, multiplying embeddings (notebook 00)
    "WordVectors",
    "train_word_vectors",
    "load_english_sentences",
    "normalize",
    "cosine_top_k",
    "quantize_database",
    "build_inverted_index",
    "inverted_index_top_k",
    # steps 1-7: the attention mechanism, in teaching order
    "dot_product_scores",
    "default_scale",
    "repeat_kv_heads",
    "head_norm",
    "soft_cap",
    "QKNorm",
    "causal_mask",
    "padding_mask",
    "local_window_mask",
    "seq_lengths_mask",
    "combine_masks",
    "masked_softmax",
    "softmax_with_sink",
    "attention_weights",
    "weighted_sum",
    "single_head_attention",
    "dot_product_attention",
    "gate_output",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    # steps 8-17: the transformer
    "sinusoidal_positions",
    "apply_rope",
    "RotaryEmbedding",
    "alibi_slopes",
    "alibi_bias",
    "ALiBi",
    "TransformerConfig",
    "Transformer",
    "count_params",
    "attention_maps",
    "layer_norm",
    "rms_norm",
    "greedy_decode",
    "beam_search",
    "sample_decode",
    "LanguageModel",
    "language_model_attention_maps",
    "generate",
    "sampling_log_probs",
    "from_pretrained",
    # steps 24-26: inspection
    "head_entropy",
    "mean_attention_distance",
    "alignment_accuracy",
    "plot_attention",
    "plot_heads",
    "plot_layers",
    "plot_translation_attention",
    "plot_alignment",
    "plot_head_summary",
    "plot_training_curves",
    "head_view",
    "model_view",
    "translation_view",
    "AttentionView",
    "attention_section",
    # step 27: fast kernels
    "flash_attention",
    "get_attention_fn",
]
