"""Training throughput: our Transformer (JAX, one nnx.jit step) against torch.nn.Transformer,
in float32 and in bfloat16 mixed precision.

Both models have the same shape (the issue's setting: d_model 256, 3+3 layers, d_ff 512,
8 heads, a shared 8k vocabulary, batch 128 x (20 + 20) tokens, Adam, dropout 0.1), train on
the same random token batches on the same CPU, in one run. Throughput counts source + target
tokens per second over timed steps after warm-up (compilation excluded for all).

Like with like: ours with ``TransformerConfig(precision="bfloat16")`` (bfloat16 products,
float32 sums, parameters, softmax, norms, loss and Adam) against torch under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (the same split: autocast runs the products
in bfloat16 and keeps the parameters and the reductions in float32), each eager and compiled.
Each figure's share of the matmul peak is against the peak of its own precision, measured in
the same run: a jitted 2048^3 product in float32, and with bfloat16 inputs and float32
accumulation. The CPU's features that set those peaks (AVX-512 BF16, AMX) are printed.

Ablations of ours (float32): dropout masks from JAX's default threefry generator instead of
XLA's RngBitGenerator (``attention.model.dropout``), and three query/key/value products instead
of one fused product (``MultiHeadAttention._project_self``), to show what each change buys.

Two instruction sets in one run (issue 33): by default the script runs itself twice, in child
processes, at the machine's own instruction set and at AVX2 (``--xla_cpu_max_isa=AVX2`` in
``XLA_FLAGS`` and ``ATEN_CPU_CAPABILITY=avx2``: XLA and torch read them once, at start), and
prints the CPU's features, the load average and the goals: ours >= 1.2x torch's best at AVX2,
>= 1.5x where AVX-512 is present. ``--breakdown`` times the parts of both steps (encoder and
decoder layers, self- and cross-attention, feed-forward, output projection + loss, Adam), ours
as jitted programs, torch's eagerly, side by side, with the whole step again in the same
rounds (each round calls every part once, in turn, so a load that comes and goes falls on all
of them) and a row for what is in no part.

PyTorch is a benchmark-only dependency: ``pip install torch==2.13.0``.

    python benchmarks/train_throughput.py [--steps 20] [--warmup 3] [--quick]
    python benchmarks/train_throughput.py --breakdown   # and both steps' profiles, part by part
    python benchmarks/train_throughput.py --isa avx2    # one instruction set, in this process

Prints a table and writes it to benchmarks/results/train_throughput.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

# benchmarks/attention.py would shadow the package: take this folder off the import path.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from attention._machine import cpu_description  # noqa: E402
from attention.model.config import TransformerConfig  # noqa: E402
from attention.model.transformer import Transformer  # noqa: E402
from attention.training.train import TrainConfig, make_optimizer, train_step  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results" / "train_throughput.txt"


def random_batch(rng, batch, src_len, tgt_len, vocab):
    src = rng.integers(4, vocab, size=(batch, src_len), dtype=np.int32)
    tgt = rng.integers(4, vocab, size=(batch, tgt_len + 1), dtype=np.int32)
    tgt[:, 0] = 1  # bos
    return {"src": src, "tgt_in": tgt[:, :-1], "tgt_out": tgt[:, 1:]}


def attention_flops(batch: int, T: int, S: int, D: int) -> float:
    """Forward FLOPs of one multi-head attention: W^Q, W^O on T positions, W^K, W^V on S,
    and the two products of the core (scores, weighted sum)."""
    return 2 * batch * (2 * D * D * T + 2 * D * D * S + 2 * T * S * D)


def feed_forward_flops(batch: int, T: int, D: int, F: int) -> float:
    return 2 * batch * 2 * D * F * T


def count_matmul_flops(cfg: TransformerConfig, batch: int, src_len: int, tgt_len: int) -> float:
    """Forward+backward FLOPs of the matrix products (3x forward), attention included."""
    D, F, L, V = cfg.d_model, cfg.d_ff, cfg.num_layers, cfg.tgt_vocab_size
    S, T = src_len, tgt_len
    encoder = attention_flops(batch, S, S, D) + feed_forward_flops(batch, S, D, F)
    decoder = (attention_flops(batch, T, T, D) + attention_flops(batch, T, S, D)
               + feed_forward_flops(batch, T, D, F))
    output = 2 * batch * T * D * V
    return 3 * (L * (encoder + decoder) + output)


def time_steps(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_jax(cfg, batches, steps, warmup):
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    optimizer = make_optimizer(model, cfg.d_model, TrainConfig(warmup_steps=100))
    it = iter(batches * (steps + warmup + 1))

    def step():
        out = train_step(model, optimizer, next(it), label_smoothing=0.1, pad_id=cfg.pad_id)
        jax.block_until_ready(out["loss"])

    return time_steps(step, steps, warmup)


@contextlib.contextmanager
def ablation(name):
    """Undo one of the step's optimisations while the block runs (benchmark only)."""
    from attention.mechanism.multi_head import MultiHeadAttention
    from attention.model.dropout import Dropout

    if name == "threefry dropout":
        target, attribute, replacement = Dropout, "__call__", nnx.Dropout.__call__
    elif name == "three q/k/v products":
        def replacement(self, x):
            return self.query(x), self.key(x), self.value(x)
        target, attribute = MultiHeadAttention, "_project_self"
    else:
        raise ValueError(name)
    original = getattr(target, attribute)
    setattr(target, attribute, replacement)
    jax.clear_caches()  # train_step's compiled program was traced with the original
    try:
        yield
    finally:
        setattr(target, attribute, original)
        jax.clear_caches()


def make_torch_model(cfg):
    """torch.nn.Transformer with our shape: a shared embedding table, scaled by sqrt(d_model),
    that is also the output projection (as ``share_embeddings=True``)."""
    import torch

    class TorchModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(cfg.src_vocab_size, cfg.d_model)
            self.core = torch.nn.Transformer(
                d_model=cfg.d_model, nhead=cfg.num_heads, num_encoder_layers=cfg.num_layers,
                num_decoder_layers=cfg.num_layers, dim_feedforward=cfg.d_ff,
                dropout=cfg.dropout_rate, batch_first=True,
            )

        def forward(self, src, tgt):
            scale = cfg.d_model**0.5
            mask = self.core.generate_square_subsequent_mask(tgt.shape[1])
            hidden = self.core(self.embed(src) * scale, self.embed(tgt) * scale, tgt_mask=mask,
                               tgt_is_causal=True)
            return hidden @ self.embed.weight.T  # shared output projection

    return TorchModel()


def bench_torch(cfg, batches, steps, warmup, compiled, precision="float32"):
    import torch

    torch.manual_seed(0)
    torch._dynamo.reset()  # each compiled variant compiles afresh, not from the last one
    model = make_torch_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=cfg.pad_id)
    autocast = precision == "bfloat16"

    def train_once(src, tgt_in, tgt_out):
        optimizer.zero_grad(set_to_none=True)
        # autocast: products in bfloat16, parameters, reductions and the loss in float32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(src, tgt_in)
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]).float(), tgt_out.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss

    fn = torch.compile(train_once) if compiled else train_once
    tensors = [tuple(torch.from_numpy(b[k]).long() for k in ("src", "tgt_in", "tgt_out"))
               for b in batches]
    it = iter(tensors * (steps + warmup + 1))
    return time_steps(lambda: fn(*next(it)).item(), steps, warmup)


def measure_matmul_peaks(n=2048, repeats=5):
    """FLOP/s of a jitted n^3 product: float32, and bfloat16 inputs with float32 accumulation
    (the mixed-precision product); also torch's, where torch is there (the larger counts)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    products = {
        "float32": (jax.jit(jnp.matmul), a, b),
        "bfloat16": (jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)),
                     a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)),
    }
    peaks = {}
    for name, (matmul, x, y) in products.items():
        matmul(x, y).block_until_ready()
        best = min(_timed(lambda m=matmul, x=x, y=y: m(x, y).block_until_ready())
                   for _ in range(repeats))
        peaks[name] = {"jax": 2 * n**3 / best}
    try:
        import torch
    except ImportError:
        return peaks
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        x, y = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        x @ y
        best = min(_timed(lambda x=x, y=y: x @ y) for _ in range(repeats))
        peaks[name]["torch"] = 2 * n**3 / best
    return peaks


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fwd_bwd(call, module, float_args, other_args):
    """A zero-argument timer target: one jitted forward+backward of ``call(module, *float_args,
    *other_args)``, with gradients for the module's Params and ``float_args``, as in training
    (dropout on). Arrays are arguments of the jitted function, never closed over."""
    @nnx.jit
    def run(module, float_args, other_args):
        def loss(module, float_args):
            return jnp.sum(call(module, *float_args, *other_args))
        return nnx.grad(loss, argnums=(0, 1))(module, float_args)

    return lambda: run(module, float_args, other_args)


def torch_breakdown(cfg, batch, repeats=5):
    """torch's step over the same parts as ``breakdown``, eager (each part's forward and
    ``backward()``; torch.compile per part would time compiled programs that its whole step does
    not run), all in the same rounds (``interleaved_medians``). Returns ``{row name:
    seconds}``; the row names are ``breakdown``'s."""
    import torch

    torch.manual_seed(0)
    B, S = batch["src"].shape
    T = batch["tgt_in"].shape[1]
    D, V = cfg.d_model, cfg.tgt_vocab_size
    model = make_torch_model(cfg)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=cfg.pad_id)
    src, tgt_in, tgt_out = (torch.from_numpy(batch[k]).long()
                            for k in ("src", "tgt_in", "tgt_out"))
    encoder_layer, decoder_layer = model.core.encoder.layers[0], model.core.decoder.layers[0]
    x_BSD = torch.randn(B, S, D, requires_grad=True)
    memory_BSD = torch.randn(B, S, D, requires_grad=True)
    h_BTD = torch.randn(B, T, D, requires_grad=True)
    causal = model.core.generate_square_subsequent_mask(T)

    def whole_loss():
        logits = model(src, tgt_in)
        return loss_fn(logits.reshape(-1, V), tgt_out.reshape(-1))

    def feed_forward(layer, x):
        return layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))

    def backward_of(fn):
        def run():
            model.zero_grad(set_to_none=True)
            fn().sum().backward()
        return run

    def forward_only():
        with torch.no_grad():
            whole_loss()

    zero_grads = [torch.zeros_like(parameter) for parameter in model.parameters()]

    def adam_update():  # a gradient for every parameter, as after a whole backward
        for parameter, grad in zip(model.parameters(), zero_grads, strict=True):
            parameter.grad = grad
        optimizer.step()

    def whole_step():  # eager, as every part here
        model.zero_grad(set_to_none=True)
        whole_loss().backward()
        optimizer.step()

    parts = {
        "forward only (loss)": forward_only,
        "forward + backward": backward_of(whole_loss),
        "encoder layer": backward_of(lambda: encoder_layer(x_BSD)),
        "  self-attention (MHA)": backward_of(
            lambda: encoder_layer.self_attn(x_BSD, x_BSD, x_BSD, need_weights=False)[0]),
        "  feed-forward (encoder)": backward_of(lambda: feed_forward(encoder_layer, x_BSD)),
        "decoder layer": backward_of(lambda: decoder_layer(h_BTD, memory_BSD, tgt_mask=causal,
                                                           tgt_is_causal=True)),
        "  masked self-attention (MHA)": backward_of(
            lambda: decoder_layer.self_attn(h_BTD, h_BTD, h_BTD, attn_mask=causal,
                                            is_causal=True, need_weights=False)[0]),
        "  cross-attention (MHA)": backward_of(
            lambda: decoder_layer.multihead_attn(h_BTD, memory_BSD, memory_BSD,
                                                 need_weights=False)[0]),
        "  feed-forward (decoder)": backward_of(lambda: feed_forward(decoder_layer, h_BTD)),
        "output projection + loss": backward_of(
            lambda: loss_fn((h_BTD @ model.embed.weight.T).reshape(-1, V), tgt_out.reshape(-1))),
        "Adam update": adam_update,
        "whole step, timed with the parts": whole_step,
    }
    return interleaved_medians(parts, repeats)


def interleaved_medians(targets: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each zero-argument ``targets[name]`` over ``repeats`` rounds; each
    round calls every target once, in turn (A/B interleaved: a load that comes and goes falls
    on all of them, not on whichever ran at that moment)."""
    def run(target):
        return _timed(lambda: jax.block_until_ready(target()))

    for target in targets.values():
        for _ in range(warmup):
            run(target)
    times = {name: [] for name in targets}
    for _ in range(repeats):
        for name, target in targets.items():
            times[name].append(run(target))
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def breakdown(cfg, batch, peak, step_seconds, repeats=5, torch_seconds=None):
    """A profile of the train step: each part timed forward+backward as its own jitted
    program, with its count in the step, its share of the whole step, and the share of the
    matmul peak its matrix products reach.

    The whole step (``train_step``) is timed again here, in the same rounds as the parts:
    each round calls every part once, in turn, so a change of load on a shared machine
    slows all of them alike (issue 33: a whole step timed minutes apart from its parts, under
    another load, made a third of it look missing). What the parts do not hold (embeddings,
    positions, masks, the step's metrics, nnx.jit's bookkeeping, and what XLA gains by fusing
    across part borders) is its own row, whole step minus the counted parts.
    ``step_seconds`` is the main table's figure, printed for comparison. ``torch_seconds``
    (from ``torch_breakdown``) adds torch's time for each part beside ours, and torch's time /
    ours."""
    from attention.mechanism.masks import padding_mask
    from attention.model.decoder import target_mask
    from attention.model.precision import mixed_einsum
    from attention.training.loss import label_smoothed_cross_entropy, projected_cross_entropy
    from attention.training.train import _loss_fn

    D, F, L = cfg.d_model, cfg.d_ff, cfg.num_layers
    B, S = batch["src"].shape
    T = batch["tgt_in"].shape[1]
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    optimizer = make_optimizer(model, D, TrainConfig(warmup_steps=100))
    encoder_layer, decoder_layer = model.encoder.layers[0], model.decoder.layers[0]
    key_x, key_memory, key_h = jax.random.split(jax.random.key(0), 3)
    x_BSD = jax.random.normal(key_x, (B, S, D))
    memory_BSD = jax.random.normal(key_memory, (B, S, D))
    h_BTD = jax.random.normal(key_h, (B, T, D))
    src_mask = padding_mask(tokens=jnp.asarray(batch["src"]), pad_id=cfg.pad_id)
    tgt_mask = target_mask(jnp.asarray(batch["tgt_in"]), cfg.pad_id)
    targets = jnp.asarray(batch["tgt_out"])
    table_VD = model.output_weight()

    @jax.jit
    def projection_all_logits(hidden_BTD, table_VD, targets):
        def loss(h, e):
            logits = mixed_einsum("BTD,VD->BTV", h, e, dtype=cfg.matmul_dtype)
            return label_smoothed_cross_entropy(logits, targets, label_smoothing=0.1)[0]
        return jax.grad(loss, argnums=(0, 1))(hidden_BTD, table_VD)

    @jax.jit
    def projection_chunked(hidden_BTD, table_VD, targets):
        def loss(h, e):
            return projected_cross_entropy(h, e, targets, label_smoothing=0.1,
                                           matmul_dtype=cfg.matmul_dtype)["loss_sum"]
        return jax.grad(loss, argnums=(0, 1))(hidden_BTD, table_VD)

    grads = nnx.state(model, nnx.Param)
    step_model = Transformer(cfg, rngs=nnx.Rngs(0))
    step_optimizer = make_optimizer(step_model, D, TrainConfig(warmup_steps=100))
    adam = nnx.jit(lambda optimizer, model, grads: optimizer.update(model, grads))
    forward = nnx.jit(lambda m, b: _loss_fn(m, b, 0.1, cfg.pad_id)[0])
    backward = nnx.jit(lambda m, b: nnx.grad(lambda m: _loss_fn(m, b, 0.1, cfg.pad_id)[0])(m))
    output_flops = 3 * 2 * B * T * D * cfg.tgt_vocab_size

    # (name, timer target, count in one step, forward+backward matmul FLOPs of one)
    parts = [
        ("forward only (loss)", lambda: forward(model, batch), 0, 0.0),
        ("forward + backward", lambda: backward(model, batch), 0, 0.0),
        ("encoder layer", _fwd_bwd(lambda m, x, mask: m(x, mask), encoder_layer,
                                   (x_BSD,), (src_mask,)),
         L, 3 * (attention_flops(B, S, S, D) + feed_forward_flops(B, S, D, F))),
        ("  self-attention (MHA)", _fwd_bwd(lambda m, x, mask: m(x, mask=mask),
                                            encoder_layer.self_attention, (x_BSD,), (src_mask,)),
         L, 3 * attention_flops(B, S, S, D)),
        ("  feed-forward (encoder)", _fwd_bwd(lambda m, x: m(x), encoder_layer.feed_forward,
                                              (x_BSD,), ()),
         L, 3 * feed_forward_flops(B, S, D, F)),
        ("decoder layer", _fwd_bwd(lambda m, h, mem, sm, tm: m(h, mem, sm, tm), decoder_layer,
                                   (h_BTD, memory_BSD), (src_mask, tgt_mask)),
         L, 3 * (attention_flops(B, T, T, D) + attention_flops(B, T, S, D)
                 + feed_forward_flops(B, T, D, F))),
        ("  masked self-attention (MHA)", _fwd_bwd(lambda m, h, mask: m(h, mask=mask),
                                                   decoder_layer.self_attention, (h_BTD,),
                                                   (tgt_mask,)),
         L, 3 * attention_flops(B, T, T, D)),
        ("  cross-attention (MHA)", _fwd_bwd(lambda m, h, mem, mask: m(h, mem, mask=mask),
                                             decoder_layer.cross_attention,
                                             (h_BTD, memory_BSD), (src_mask,)),
         L, 3 * attention_flops(B, T, S, D)),
        ("  feed-forward (decoder)", _fwd_bwd(lambda m, h: m(h), decoder_layer.feed_forward,
                                              (h_BTD,), ()),
         L, 3 * feed_forward_flops(B, T, D, F)),
        ("output projection + loss", lambda: projection_chunked(h_BTD, table_VD, targets),
         1, output_flops),
        ("  the same with all logits at once",
         lambda: projection_all_logits(h_BTD, table_VD, targets), 0, output_flops),
        ("Adam update", lambda: adam(optimizer, model, grads), 1, 0.0),
        ("whole step", lambda: train_step(step_model, step_optimizer, batch, label_smoothing=0.1,
                                          pad_id=cfg.pad_id), 1, 0.0),
    ]
    medians = interleaved_medians({name: target for name, target, _, _ in parts}, repeats)
    rows = [(name, medians[name], count, part_flops) for name, _, count, part_flops in parts]
    whole = rows.pop()[1]
    # Only top-level parts add up to the step (sub-rows, indented, are inside their layer).
    summed = sum(seconds * count for name, seconds, count, _ in rows if not name.startswith(" "))
    rows.append(("in no part (embeddings, masks, metrics)", whole - summed, 1, 0.0))
    rows.append(("sum of the counted parts", summed, 1, 0.0))
    rows.append(("whole step, timed with the parts", whole, 1, 0.0))
    rows.append(("whole step, main table (other rounds)", step_seconds, 0, 0.0))
    step_seconds = whole
    theirs = dict(torch_seconds or {})
    if theirs:
        theirs["sum of the counted parts"] = sum(
            theirs[name] * count for name, _, count, _ in rows
            if count and name in theirs and not name.startswith((" ", "whole", "sum")))
        theirs["in no part (embeddings, masks, metrics)"] = (
            theirs["whole step, timed with the parts"] - theirs["sum of the counted parts"])

    lines = [
        f"# where our {cfg.resolved_precision} step's time goes: each part forward+backward as "
        f"its own jitted program (median seconds; %peak against the {cfg.resolved_precision} "
        f"peak)",
        f"{'part':40s} {'seconds':>8s} {'x count':>8s} {'of step':>8s} {'matmul %peak':>13s}"
        + (f" {'torch s':>8s} {'torch/ours':>10s}" if theirs else ""),
    ]
    for name, seconds, count, part_flops in rows:
        share = f"{seconds * max(count, 1) / step_seconds:8.1%}"
        efficiency = f"{part_flops / seconds / peak:13.1%}" if part_flops else f"{'':13s}"
        shown_count = f"{count:8d}" if count else f"{'':8s}"
        line = f"{name:40s} {seconds:8.3f} {shown_count} {share} {efficiency}"
        if name in theirs:  # no ratio of two differences (either can be below zero)
            ratio = "" if name.startswith("in no part") else f"{theirs[name] / seconds:10.2f}"
            line += f" {theirs[name]:8.3f} {ratio}"
        lines.append(line.rstrip())
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--src-len", type=int, default=20)
    parser.add_argument("--tgt-len", type=int, default=20)
    parser.add_argument("--precision", choices=("float32", "bfloat16", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="few steps, no torch.compile")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of our step and of torch's (where time goes)")
    parser.add_argument("--isa", choices=("both", "native", "avx2"), default="both",
                        help="instruction set: both (one child process for each, the default), "
                             "the machine's own, or AVX2 (XLA and torch limited to it)")
    parser.add_argument("--child-json", help=argparse.SUPPRESS)  # where a child writes to
    args = parser.parse_args()
    if args.isa == "both":
        return run_both_isas(sys.argv[1:])
    if isa_env(args.isa)["XLA_FLAGS"] != os.environ.get("XLA_FLAGS", ""):
        # XLA reads XLA_FLAGS (and torch ATEN_CPU_CAPABILITY) once: start again with them set.
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], isa_env(args.isa))
    if args.quick:
        args.steps, args.warmup = 3, 1
    precisions = ("float32", "bfloat16") if args.precision == "both" else (args.precision,)
    load_start = os.getloadavg()[0]

    base = TransformerConfig(
        src_vocab_size=8000, tgt_vocab_size=8000, d_model=256, num_heads=8, d_ff=512,
        num_layers=3, dropout_rate=0.1, share_embeddings=True, max_len=64,
    )
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, args.batch, args.src_len, args.tgt_len, 8000) for _ in range(4)]
    tokens = args.batch * (args.src_len + args.tgt_len)
    flops = count_matmul_flops(base, args.batch, args.src_len, args.tgt_len)
    peaks = measure_matmul_peaks()
    torch_version = "not run"
    if not args.skip_torch:
        import torch

        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"

    # rows: (precision, implementation, seconds); ours first in each precision
    rows = []
    for precision in precisions:
        cfg = base.replace(precision=precision)
        rows.append((precision, "ours (JAX, nnx.jit)", bench_jax(cfg, batches, args.steps,
                                                                args.warmup)))
        if precision == "float32" and not args.no_ablations:
            for name in ("threefry dropout", "three q/k/v products"):
                with ablation(name):
                    rows.append((precision, f"  ours with {name}",
                                 bench_jax(cfg, batches, args.steps, args.warmup)))
        if not args.skip_torch:
            for compiled in (False, True)[: 1 if args.quick else 2]:
                name = "torch.nn.Transformer " + ("compiled" if compiled else "eager")
                name += " + autocast" if precision == "bfloat16" else ""
                rows.append((precision, name, bench_torch(base, batches, args.steps, args.warmup,
                                                          compiled, precision)))

    def peak_of(precision):
        return max(peaks[precision].values())

    lines = [
        f"# Training throughput, {cpu_description()}",
        f"# {os.cpu_count()} CPUs, jax {jax.__version__}, torch {torch_version}; load average "
        f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        f"# d_model 256, 3+3 layers, d_ff 512, 8 heads, shared 8k vocab, dropout 0.1, batch "
        f"{args.batch} x ({args.src_len}+{args.tgt_len}) tokens, Adam; median of {args.steps} "
        f"steps",
    ]
    for precision in precisions:
        shown = ", ".join(f"{who} {value / 1e9:.0f}" for who, value in peaks[precision].items())
        lines.append(f"# {precision} matmul peak (2048^3, same run): {shown} GFLOP/s")
    lines += [
        "# of peak: against the peak of the row's own precision; vs torch: torch's best "
        "(eager or compiled) in that precision / this row's time",
        f"{'precision':9s} {'implementation':42s} {'s/step':>7s} {'tokens/s':>9s} "
        f"{'GFLOP/s':>8s} {'of peak':>8s} {'vs torch':>8s}",
    ]
    best_torch = {p: min((sec for q, name, sec in rows if q == p and name.startswith("torch")),
                         default=None) for p in precisions}
    for precision, name, seconds in rows:
        versus = (f"{best_torch[precision] / seconds:8.2f}" if best_torch[precision] else
                  f"{'':8s}")
        lines.append(
            f"{precision:9s} {name:42s} {seconds:7.3f} {tokens / seconds:9.0f} "
            f"{flops / seconds / 1e9:8.1f} {flops / seconds / peak_of(precision):8.1%} {versus}"
        )
    ours = {p: sec for p, name, sec in rows if name.startswith("ours")}
    lines.append("# goals (issue 16), measured in this run")
    for precision in precisions:
        if best_torch[precision]:
            ratio = best_torch[precision] / ours[precision]
            lines.append(f"#   {precision}: ours {ratio:.2f}x torch's best (goal >= 1.5x: "
                         f"{'met' if ratio >= 1.5 else 'MISSED'})")
    if "bfloat16" in ours:
        share = flops / ours["bfloat16"] / peak_of("bfloat16")
        amx = "amx_bf16 yes" in cpu_description()
        lines.append(f"#   bfloat16 step at {share:.1%} of the bfloat16 matmul peak (goal >= 40% "
                     f"on a CPU with AMX: {'met' if share >= 0.4 else 'MISSED'}"
                     f"{'' if amx else '; this CPU has no AMX'})")
        if "float32" in ours:
            lines.append(f"#   bfloat16 / float32 step speed: "
                         f"{ours['float32'] / ours['bfloat16']:.2f}x")
    if args.breakdown:
        for precision in precisions:
            cfg = base.replace(precision=precision)
            theirs = None
            if not args.skip_torch and precision == "float32":
                theirs = torch_breakdown(cfg, batches[0])
                theirs["whole step, main table (other rounds)"] = best_torch[precision]
            lines += breakdown(cfg, batches[0], peak_of(precision), ours[precision],
                               torch_seconds=theirs)
    text = "\n".join(lines)
    print(text)
    if args.child_json:
        ratios = {p: best_torch[p] / ours[p] for p in precisions if best_torch[p]}
        pathlib.Path(args.child_json).write_text(json.dumps({"lines": lines, "ratios": ratios}))
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2"}  # and --xla_cpu_max_isa=AVX2 added to XLA_FLAGS


def isa_env(isa: str) -> dict[str, str]:
    """The environment of the child process for ``isa``: at AVX2, XLA (``--xla_cpu_max_isa``)
    and torch (``ATEN_CPU_CAPABILITY``) are both limited to AVX2; natively, neither is."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_cpu_max_isa" not in f]
    if isa == "avx2":
        flags.append("--xla_cpu_max_isa=AVX2")
        env.update(AVX2_ENV)
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def run_both_isas(argv: list[str]) -> None:
    """Run this script twice, at the machine's own instruction set and at AVX2, each in a child
    process (XLA reads its flags and torch its capability once, at start), and write one report
    with the goals of issue 33: ours >= 1.2x torch's best at AVX2, >= 1.5x where AVX-512 is."""
    import tempfile

    load_start = os.getloadavg()
    avx512 = "avx512f yes" in cpu_description()
    lines = [f"# Training throughput at two instruction sets, {cpu_description()}",
             f"# {os.cpu_count()} CPUs; load average (1, 5, 15 min) at start "
             f"{', '.join(f'{x:.2f}' for x in load_start)}",
             f"# XLA_FLAGS given to this run: {os.environ.get('XLA_FLAGS') or '(none)'}"]
    ratios = {}
    for isa in ("native", "avx2"):
        env = isa_env(isa)
        # A fresh torch.compile cache for each: inductor's cache does not key on
        # ATEN_CPU_CAPABILITY, and the AVX2 child crashed (SIGSEGV) on the native child's code.
        with (tempfile.NamedTemporaryFile(suffix=".json") as out,
              tempfile.TemporaryDirectory(prefix="torchinductor-") as inductor):
            env["TORCHINDUCTOR_CACHE_DIR"] = inductor
            subprocess.run([sys.executable, "-X", "faulthandler", __file__, *argv, "--isa", isa,
                            "--child-json", out.name], env=env, check=True)
            child = json.loads(pathlib.Path(out.name).read_text())
        shown = (f"XLA_FLAGS='{env['XLA_FLAGS']}' ATEN_CPU_CAPABILITY="
                 f"{env.get('ATEN_CPU_CAPABILITY', '(unset)')}")
        title = "the machine's own instruction set" if isa == "native" else "AVX2"
        lines += ["", f"## {title}: {shown}", *child["lines"]]
        ratios[isa] = child["ratios"]
    lines += ["", "# goals (issue 33), float32, measured in this run"]
    if "float32" in ratios["avx2"]:
        ratio = ratios["avx2"]["float32"]
        lines.append(f"#   at AVX2: ours {ratio:.2f}x torch's best (goal >= 1.2x: "
                     f"{'MET' if ratio >= 1.2 else 'MISSED'})")
    if "float32" in ratios["native"]:
        ratio = ratios["native"]["float32"]
        goal = ("MET" if ratio >= 1.5 else "MISSED") if avx512 else "no AVX-512 here"
        lines.append(f"#   at the machine's own ISA: ours {ratio:.2f}x torch's best (goal >= "
                     f"1.5x with AVX-512: {goal})")
    lines.append(f"# load average (1, 5, 15 min) at end "
                 f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
