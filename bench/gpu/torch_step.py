"""PyTorch training-step benchmark: the PyTorch counterpart of `retort bench` on the same recipes.

It times the training step of the configurations below, each the twin of a stage of a retort
bench recipe, on synthetic inputs that are made once on the device and reused every step (as
`retort bench` does), so only the step itself is timed.

GPU (bench/gpu's TOML recipes; the GPU kit, bench/gpu/check.py):
* kd_resnet32x4_resnet8x4 (step_kd_resnet32x4_resnet8x4.toml): RepDistiller's resnet32x4
  teacher (eval mode, forward under no_grad) distilled into resnet8x4 (train mode), 3x32x32
  inputs, 100 classes. Loss 0.1 * CE + 0.9 * DistillKL at T = 4 (KL summed, times T^2, divided
  by the batch). SGD lr 0.05, momentum 0.9, weight decay 5e-4 on every parameter, no nesterov.
* vit_small_p4 (step_vit_small_p4.toml): timm's VisionTransformer, dim 384, depth 12, 6 heads,
  patch 4 at 32x32, class token, 100 classes, trained alone with CE. AdamW lr 5e-4,
  betas (0.9, 0.999), eps 1e-8, weight decay 0.05 on every parameter.

CPU (the stages of bench/cpu/steps_fmnist.toml; bench/cpu/side_by_side.py), 1x28x28, 10 classes:
* teacher_wrn_16_2, student_resnet8: trained alone with CE; SGD lr 0.1, momentum 0.9, nesterov,
  weight decay 5e-4 on every parameter.
* kd_resnet8_wrn_16_2: wrn_16_2 (eval, no_grad) into resnet8, 0.1 CE + 0.9 DistillKL at T = 4,
  the same SGD.
* vit_tiny_p7_d4: timm's VisionTransformer, dim 192, 3 heads, patch 7, depth 4, CE; AdamW lr 1e-3,
  weight decay 0.05 except on norm weights and biases (retort's no_decay_norm_bias).

Each step reads the loss to the host once (`loss.item()`), as retort's trainer does. Modes:
eager_f32 (TF32 off, like-for-like with retort's f32), eager_tf32 (TF32 on), bf16_cl (bf16
autocast, channels_last, TF32 on) and compile (torch.compile, TF32 off; compiled during the
warm-up, whose seconds are reported apart). It prints one JSON line on stdout per run, or one
with "error" on a failure (a non-finite loss included), and exits 1 if any run failed; the rest
goes to stderr. --plan runs several (config, batch, mode) in one process, so torch is imported
and CUDA initialised once (the GPU kit, bench/gpu/check.py, uses it); each line is flushed as
its run ends.

    python3 bench/gpu/torch_step.py --config kd_resnet32x4_resnet8x4 --batch 64 --mode eager_f32
    python3 bench/gpu/torch_step.py --plan kd_resnet32x4_resnet8x4:64:eager_f32,vit_small_p4:256:compile
    python3 bench/gpu/torch_step.py --device cpu --config kd_resnet8_wrn_16_2 --batch 128 --mode eager_f32
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time

SGD_RD = ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=False))
SGD_FMNIST = ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
# student, teacher (or None), input shape, classes, optimizer, and the student's ViT patch and depth
CONFIGS = {
    "kd_resnet32x4_resnet8x4": dict(student="resnet8x4", teacher="resnet32x4", shape=(3, 32, 32), classes=100,
                                    optimizer=SGD_RD),
    "vit_small_p4": dict(student="vit_small", patch=4, shape=(3, 32, 32), classes=100,
                         optimizer=("adamw", dict(lr=5e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05))),
    "teacher_wrn_16_2": dict(student="wrn_16_2", shape=(1, 28, 28), classes=10, optimizer=SGD_FMNIST),
    "student_resnet8": dict(student="resnet8", shape=(1, 28, 28), classes=10, optimizer=SGD_FMNIST),
    "kd_resnet8_wrn_16_2": dict(student="resnet8", teacher="wrn_16_2", shape=(1, 28, 28), classes=10,
                                optimizer=SGD_FMNIST),
    "vit_tiny_p7_d4": dict(student="vit_tiny", patch=7, depth=4, shape=(1, 28, 28), classes=10,
                           optimizer=("adamw", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
                           no_decay_norm_bias=True),
}
MODES = ("eager_f32", "eager_tf32", "bf16_cl", "compile")
KD_TEMPERATURE = 4.0
KD_CE_WEIGHT, KD_KL_WEIGHT = 0.1, 0.9

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch_reference"))


class ArgumentError(Exception):
    pass


class JsonArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting 2, so bad flags get the error JSON."""

    def error(self, message):
        raise ArgumentError(message)


def parse_args(argv):
    p = JsonArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS))
    p.add_argument("--batch", type=int)
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--plan", help="comma-separated config:batch:mode runs, instead of --config/--batch/--mode")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--warmup", default=5, type=int, help="untimed steps first (compilation happens here)")
    p.add_argument("--steps", default=20, type=int, help="steps per timed round")
    p.add_argument("--rounds", default=3, type=int, help="timed rounds; the median is reported")
    p.add_argument("--seed", default=0, type=int)
    return p.parse_args(argv)


def planned_runs(args):
    """The (config, batch, mode) runs asked for, each checked, before any work starts."""
    if args.plan is None:
        if args.config is None or args.batch is None or args.mode is None:
            raise ArgumentError("give --config, --batch and --mode, or --plan")
        runs = [(args.config, args.batch, args.mode)]
    else:
        runs = []
        for item in args.plan.split(","):
            parts = item.split(":")
            if len(parts) != 3 or parts[0] not in CONFIGS or parts[2] not in MODES or not parts[1].isdigit():
                raise ArgumentError(f"--plan: '{item}' is not config:batch:mode with config in {sorted(CONFIGS)}, "
                                    f"a batch size and mode in {MODES}")
            runs.append((parts[0], int(parts[1]), parts[2]))
    for _, batch, mode in runs:
        if batch < 1 or args.steps < 1 or args.rounds < 1 or args.warmup < 0:
            raise ArgumentError("--batch, --steps and --rounds must be >= 1 and --warmup >= 0")
        if mode == "compile" and args.warmup < 1:
            raise ArgumentError("--mode compile needs --warmup >= 1 so compilation stays out of the timed rounds")
    return runs


def check_device(torch, device):
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but torch.cuda.is_available() is False")


def set_tf32(torch, enabled):
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def synchronize(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def build_model(arch, config, patch_size=0, depth=0):
    from torch_models import build  # bench/torch_reference, put on sys.path above

    channels, side, _ = config["shape"]
    return build(arch, num_classes=config["classes"], in_channels=channels, image_size=side, patch_size=patch_size,
                 depth=depth)


def prepare_model(torch, model, device, mode, train):
    """Moves the model to the device, sets train/eval, applies channels_last or torch.compile."""
    model = model.to(device)
    model.train(train)
    if mode == "bf16_cl":
        model = model.to(memory_format=torch.channels_last)
    if mode == "compile":
        model = torch.compile(model)
    return model


def distill_kl(F, student_logits, teacher_logits, T):
    """RepDistiller's DistillKL: KL(softmax(t/T) || softmax(s/T)) summed, times T^2, over the batch."""
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    p_t = F.softmax(teacher_logits / T, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T ** 2) / student_logits.shape[0]


def kd_loss_fn(torch, student, teacher, x, y, autocast):
    """0.1 CE + 0.9 DistillKL, the teacher's forward under no_grad."""
    F = torch.nn.functional

    def loss():
        with torch.no_grad(), autocast():
            teacher_logits = teacher(x)
        with autocast():
            student_logits = student(x)
            return (KD_CE_WEIGHT * F.cross_entropy(student_logits, y)
                    + KD_KL_WEIGHT * distill_kl(F, student_logits, teacher_logits, KD_TEMPERATURE))

    return loss


def ce_loss_fn(torch, student, x, y, autocast):
    def loss():
        with autocast():
            return torch.nn.functional.cross_entropy(student(x), y)

    return loss


def make_step(loss_fn, optimizer):
    """One training step: the loss, read on the host once (as retort's trainer does), backward, update."""

    def step():
        loss = loss_fn()
        value = loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value

    return step


def make_optimizer(torch, model, config):
    kind, settings = config["optimizer"]
    params = list(model.parameters())
    if config.get("no_decay_norm_bias"):  # weight decay on weights of 2 dims or more only
        decay = [p for p in params if p.ndim > 1]
        params = [{"params": decay}, {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if kind == "sgd":
        return torch.optim.SGD(params, **settings)
    return torch.optim.AdamW(params, **settings)


def build_step(torch, args, x, y):
    """Models, optimizer and the step closure for args.config; returns (step, params_student)."""
    if args.mode == "bf16_cl":
        autocast = lambda: torch.autocast(args.device, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    config = CONFIGS[args.config]
    student_raw = build_model(config["student"], config, config.get("patch", 0), config.get("depth", 0))
    student = prepare_model(torch, student_raw, args.device, args.mode, train=True)
    optimizer = make_optimizer(torch, student, config)
    if config.get("teacher"):
        teacher = prepare_model(torch, build_model(config["teacher"], config), args.device, args.mode, train=False)
        for p in teacher.parameters():
            p.requires_grad_(False)
        step = make_step(kd_loss_fn(torch, student, teacher, x, y, autocast), optimizer)
    else:
        step = make_step(ce_loss_fn(torch, student, x, y, autocast), optimizer)
    return step, sum(p.numel() for p in student_raw.parameters())


def run_steps(step, n):
    loss = float("nan")
    for _ in range(n):
        loss = step()
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss}")
    return loss


def run_benchmark(args):
    import torch

    if args.mode == "compile":
        torch._dynamo.reset()  # each compiled run starts from a clean compile cache

    check_device(torch, args.device)
    tf32 = args.mode in ("eager_tf32", "bf16_cl")
    set_tf32(torch, tf32)
    torch.manual_seed(args.seed)
    config = CONFIGS[args.config]
    x = torch.randn(args.batch, *config["shape"], device=args.device)
    y = torch.randint(0, config["classes"], (args.batch,), device=args.device)
    if args.mode == "bf16_cl":
        x = x.contiguous(memory_format=torch.channels_last)
    step, params_student = build_step(torch, args, x, y)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    print(f"torch_step: {args.config} {args.mode} batch {args.batch} on {args.device}: "
          f"{args.warmup} warm-up steps", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    loss = run_steps(step, args.warmup)
    synchronize(torch, args.device)
    warmup_s = time.perf_counter() - t0

    round_ms = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        loss = run_steps(step, args.steps)
        synchronize(torch, args.device)
        round_ms.append((time.perf_counter() - t0) * 1e3)
        print(f"torch_step: round {r + 1}/{args.rounds}: {round_ms[-1]:.2f} ms for {args.steps} steps, "
              f"loss {loss:.4f}", file=sys.stderr, flush=True)

    median_ms = statistics.median(round_ms)
    cuda = args.device == "cuda"
    return {
        "framework": "pytorch", "config": args.config, "mode": args.mode, "batch": args.batch,
        "device": args.device, "steps": args.steps, "rounds": args.rounds, "warmup_steps": args.warmup,
        "warmup_s": round(warmup_s, 4), "ms_per_step": round(median_ms / args.steps, 4),
        "images_per_s": round(args.batch * args.steps / (median_ms / 1e3), 2),
        "round_ms": [round(ms, 3) for ms in round_ms], "final_loss": loss, "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if cuda else "cpu",
        "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "tf32": tf32, "params_student": params_student, "threads": torch.get_num_threads(),
    }


def best_effort_keys(argv):
    """config/mode/batch/device from argv for the error JSON when parsing itself failed."""
    keys = {"config": None, "mode": None, "batch": None, "device": "cuda"}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name.startswith("--") and name[2:] in keys:
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
            keys[name[2:]] = value
    if keys["batch"] is not None and keys["batch"].lstrip("-").isdigit():
        keys["batch"] = int(keys["batch"])
    return keys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # Everything but the JSON lines goes to stderr, C-level output (compilers, cuDNN) too.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def emit(record):
        json_out.write(json.dumps(record) + "\n")
        json_out.flush()

    keys = best_effort_keys(argv)
    try:
        try:
            args = parse_args(argv)
        except SystemExit as e:  # --help: usage went to stderr, nothing to benchmark
            if not e.code:
                return 0
            raise
        runs = planned_runs(args)
    except (Exception, SystemExit) as e:
        emit({"framework": "pytorch", **keys, "error": f"{type(e).__name__}: {e}"})
        return 1
    failed = 0
    for config, batch, mode in runs:
        run = argparse.Namespace(**{**vars(args), "config": config, "batch": batch, "mode": mode})
        keys = {"config": config, "mode": mode, "batch": batch, "device": args.device}
        try:
            emit(run_benchmark(run))
        except (Exception, SystemExit) as e:  # torch_models.build raises SystemExit for unknown archs
            message = f"{type(e).__name__}: {e}"
            print(f"torch_step: error: {message}", file=sys.stderr, flush=True)
            emit({"framework": "pytorch", **keys, "error": message})
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
