"""Training throughput: our Transformer (JAX, one nnx.jit step) against torch.nn.Transformer.

Both models have the same shape (the issue's setting: d_model 256, 3+3 layers, d_ff 512,
8 heads, a shared 8k vocabulary, batch 128 x (20 + 20) tokens, Adam), train on the same random
token batches on the same CPU, in one run. Throughput counts source + target tokens per
second over timed steps after warm-up (compilation excluded for all three).

PyTorch is a benchmark-only dependency: ``pip install torch==2.13.0``.

    python benchmarks/train_throughput.py [--steps 20] [--warmup 3] [--quick]
    python benchmarks/train_throughput.py --breakdown   # and a profile of our step, part by part

Prints a table and writes it to benchmarks/results/train_throughput.txt.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time

# benchmarks/attention.py would shadow the package: take this folder off the import path.
_HERE = pathlib.Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

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


def bench_torch(cfg, batches, steps, warmup, compiled):
    import torch

    torch.manual_seed(0)

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

    model = TorchModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=cfg.pad_id)

    def train_once(src, tgt_in, tgt_out):
        optimizer.zero_grad(set_to_none=True)
        logits = model(src, tgt_in)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss

    fn = torch.compile(train_once) if compiled else train_once
    tensors = [tuple(torch.from_numpy(b[k]).long() for k in ("src", "tgt_in", "tgt_out"))
               for b in batches]
    it = iter(tensors * (steps + warmup + 1))
    return time_steps(lambda: fn(*next(it)).item(), steps, warmup)


def measure_matmul_peak(n=2048, repeats=5):
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = min(_timed(lambda: matmul(a, b).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best


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


def breakdown(cfg, batch, peak, step_seconds, repeats=5):
    """A profile of the train step: each part timed forward+backward as its own jitted
    program, with its count in the step, its share of the whole step, and the share of the
    matmul peak its matrix products reach. The parts add up to about the step (what they
    miss: embeddings, positions, masks, and what XLA gains by fusing across part borders)."""
    from attention.mechanism.masks import padding_mask
    from attention.model.decoder import target_mask
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
            return label_smoothed_cross_entropy(h @ e.T, targets, label_smoothing=0.1)[0]
        return jax.grad(loss, argnums=(0, 1))(hidden_BTD, table_VD)

    @jax.jit
    def projection_chunked(hidden_BTD, table_VD, targets):
        def loss(h, e):
            return projected_cross_entropy(h, e, targets, label_smoothing=0.1)["loss_sum"]
        return jax.grad(loss, argnums=(0, 1))(hidden_BTD, table_VD)

    grads = nnx.state(model, nnx.Param)
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
        ("  feed-forward", _fwd_bwd(lambda m, x: m(x), encoder_layer.feed_forward, (x_BSD,), ()),
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
        ("  feed-forward", _fwd_bwd(lambda m, h: m(h), decoder_layer.feed_forward, (h_BTD,), ()),
         L, 3 * feed_forward_flops(B, T, D, F)),
        ("output projection + loss", lambda: projection_chunked(h_BTD, table_VD, targets),
         1, output_flops),
        ("  the same with all logits at once",
         lambda: projection_all_logits(h_BTD, table_VD, targets), 0, output_flops),
        ("Adam update", lambda: adam(optimizer, model, grads), 1, 0.0),
    ]
    rows = []
    for name, target, count, part_flops in parts:
        seconds = time_steps(lambda target=target: jax.block_until_ready(target()), repeats, 2)
        rows.append((name, seconds, count, part_flops))
    # Only top-level parts add up to the step (sub-rows, indented, are inside their layer).
    summed = sum(seconds * count for name, seconds, count, _ in rows if not name.startswith(" "))
    rows.append(("sum of the counted parts", summed, 1, 0.0))
    rows.append(("whole step (same run as the table)", step_seconds, 1, 0.0))

    lines = [
        "# where our step's time goes: each part forward+backward as its own jitted program "
        "(median seconds)",
        f"{'part':40s} {'seconds':>8s} {'x count':>8s} {'of step':>8s} {'matmul %peak':>13s}",
    ]
    for name, seconds, count, part_flops in rows:
        share = f"{seconds * max(count, 1) / step_seconds:8.1%}"
        efficiency = f"{part_flops / seconds / peak:13.1%}" if part_flops else f"{'':13s}"
        shown_count = f"{count:8d}" if count else f"{'':8s}"
        lines.append(f"{name:40s} {seconds:8.3f} {shown_count} {share} {efficiency}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--src-len", type=int, default=20)
    parser.add_argument("--tgt-len", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="few steps, no torch.compile")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of our step (a profile of where time goes)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1

    cfg = TransformerConfig(
        src_vocab_size=8000, tgt_vocab_size=8000, d_model=256, num_heads=8, d_ff=512,
        num_layers=3, dropout_rate=0.1, share_embeddings=True, max_len=64,
    )
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, args.batch, args.src_len, args.tgt_len, 8000) for _ in range(4)]
    tokens = args.batch * (args.src_len + args.tgt_len)
    flops = count_matmul_flops(cfg, args.batch, args.src_len, args.tgt_len)
    peak = measure_matmul_peak()

    rows = [("attention (JAX, nnx.jit)", bench_jax(cfg, batches, args.steps, args.warmup))]
    if not args.skip_torch:
        import torch

        rows.append(("torch.nn.Transformer eager",
                     bench_torch(cfg, batches, args.steps, args.warmup, compiled=False)))
        if not args.quick:
            rows.append(("torch.nn.Transformer compiled",
                         bench_torch(cfg, batches, args.steps, args.warmup, compiled=True)))
        torch_version = torch.__version__
    else:
        torch_version = "not run"

    reference = rows[-1][1] if len(rows) > 1 else rows[0][1]
    lines = [
        f"# Training throughput, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, jax {jax.__version__}, torch {torch_version}",
        f"# d_model 256, 3+3 layers, d_ff 512, 8 heads, shared 8k vocab, batch {args.batch} x "
        f"({args.src_len}+{args.tgt_len}) tokens, Adam; median of {args.steps} steps",
        f"# matmul peak (jitted 2048^3 float32 matmul, same run): {peak / 1e9:.1f} GFLOP/s",
        f"# ratio: against {rows[-1][0]}",
        f"{'implementation':32s} {'s/step':>8s} {'tokens/s':>10s} {'GFLOP/s':>8s} "
        f"{'of peak':>8s} {'ratio':>6s}",
    ]
    for name, seconds in rows:
        lines.append(
            f"{name:32s} {seconds:8.3f} {tokens / seconds:10.0f} {flops / seconds / 1e9:8.1f} "
            f"{flops / seconds / peak:8.1%} {reference / seconds:6.2f}"
        )
    if args.breakdown:
        lines += breakdown(cfg, batches[0], peak, rows[0][1])
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
