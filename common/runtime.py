"""Facts about the process and the machine a run is on: processes, precision, logging, scratch space."""

from __future__ import annotations

import atexit
import logging
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import warnings

import torch

from common.errors import UserError, first_line

logger = logging.getLogger(__name__)


def on_gpu() -> bool:
    """Whether this process trains on a CUDA GPU (the settings whose `auto` depends on the hardware ask here)."""
    return torch.cuda.is_available()


def world_size() -> int:
    """Processes started by torchrun / accelerate launch (they set WORLD_SIZE); 1 for a plain `python recipe.py`."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_processes() -> int:
    """Processes on this machine (torchrun / accelerate launch set LOCAL_WORLD_SIZE); 1 for a plain run."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def check_one_gpu_per_process() -> None:
    """Refuse more processes on this machine than it has GPUs: two ranks on one GPU fail deep inside NCCL
    ("Duplicate GPU detected"). Without a GPU the processes share the CPU (gloo), which works."""
    local = local_processes()
    if local > 1 and torch.cuda.is_available() and local > torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise UserError(
            f"{local} processes on this machine but {gpus} GPU(s); start one process per GPU "
            f"(torchrun --nproc_per_node {gpus}, accelerate launch --num_processes {gpus})"
        )


def check_fsdp_has_an_accelerator(fsdp_asked: bool) -> None:
    """Refuse FSDP without a GPU: accelerate applies it only on an accelerator, and on a CPU trains without it,
    silently (every process then holds the whole model). Asked for by `accelerate launch` with an FSDP config
    (it sets ACCELERATE_USE_FSDP) or `--trainer-arg fsdp=...`."""
    from_launcher = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    if (fsdp_asked or from_launcher) and not torch.cuda.is_available():
        raise UserError(
            "FSDP needs GPUs: on a CPU accelerate trains without it (each process would hold the whole model); "
            "use configs/accelerate/ddp.yaml (or torchrun) here, FSDP on a machine with GPUs"
        )


def umask() -> int:
    """The process's file-creation mask (reading it means setting it: it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def data_workers() -> int:
    """DataLoader worker processes: on a GPU, a few, so that batches are collated while the GPU computes;
    on a CPU none, since workers would take cores from the training itself."""
    if not torch.cuda.is_available():
        return 0
    cores_per_process = (os.cpu_count() or 1) // local_processes()
    return max(0, min(4, cores_per_process - 1))


def bf16_is_fast() -> bool:
    """Whether bf16 autocast runs natively here: Ampere+ GPUs, or CPUs with AVX512-BF16/AMX (else it is emulated,
    slow: torch's own check counts emulation as support, and so would pick bf16 on a T4 or V100)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers; older/other builds may lack them
        return False


# bf16 autocast costs the same for every op and weight whatever its size (a cast of each weight each step, every op
# dispatched through autocast) and saves in proportion to the matmul work, so below some work per step it is
# slower than fp32. In training FLOPs of a forward and backward pass (common.train.arguments.step_flops):
# - CPU (2 cores, AVX512-BF16): bf16 took 1.20x fp32's step at 7e7, 1.08x at 2.8e8, 0.82x at 1.1e9 and 0.40x at
#   1.2e11 (BERTs of width 16 to 384, batch 32 x 56, measured side by side; the bert recipe's default is 1.3e11)
# - CUDA (H100, ../shared/gpu): at the classifiers' defaults (1.3e11 and 3.6e11) fp32 with padding to 128 ran
#   1.5-3x the examples/s of bf16 autocast; at the causal LM's (1.7e12) the two were about even
BF16_PAYS_FROM = {"cpu": 5e8, "cuda": 1e12}


def auto_precision(step_flops: float | None = None) -> str:
    """--precision auto: bf16 autocast where this CPU/GPU runs it natively and a step has the matmul work to pay
    for it (`step_flops`, when known); else fp32."""
    if not bf16_is_fast():
        return "fp32"
    if step_flops is None:
        return "bf16"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = "bf16" if step_flops >= BF16_PAYS_FROM[device] else "fp32"
    logger.info(
        "precision auto: %s (a micro-batch is %.1e training FLOPs; on this %s bf16 autocast pays for its casts "
        "from %.0e)%s",
        "bf16 autocast" if precision == "bf16" else "fp32",
        step_flops,
        "GPU" if device == "cuda" else "CPU",
        BF16_PAYS_FROM[device],
        "" if precision == "bf16" else "; --precision bf16 to use it anyway",
    )
    return precision


def precision_flags(precision: str, step_flops: float | None = None) -> dict:
    """TrainingArguments flags for --precision auto|bf16|fp16|fp32 (auto: see auto_precision). When auto picks
    fp32 on a GPU that has TF32 tensor cores, its matmuls run in TF32 (a 10-bit mantissa: finer than bf16's 7);
    an fp32 asked for is plain fp32."""
    chosen = auto_precision(step_flops) if precision == "auto" else precision
    if chosen == "fp16" and not torch.cuda.is_available():
        raise UserError("--precision fp16 needs a CUDA GPU; use bf16 or fp32 on this machine")
    flags = {"bf16": chosen == "bf16", "fp16": chosen == "fp16"}
    if has_tf32():  # set either way: TF32 is a setting of the whole process, which may run more than one training
        flags["tf32"] = precision == "auto" and chosen == "fp32"
    return flags


def has_tf32() -> bool:
    """An NVIDIA GPU with TF32 tensor cores (Ampere and newer)."""
    return torch.cuda.is_available() and torch.version.cuda is not None and torch.cuda.get_device_capability()[0] >= 8


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def command() -> str:
    """The command line this process was started with, as a user could paste it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def scratch_dir() -> str:
    """Where Trainer may write while training; removed when the process exits (the result goes through save_run)."""
    path = tempfile.mkdtemp(prefix="lm-recipes-")
    atexit.register(shutil.rmtree, path, True)
    return path


def setup_logging() -> None:
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun/accelerate launch: one process reports, the others stay quiet
        sys.stdout = open(os.devnull, "w")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(name)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stdout
    )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # avoids the fork warning once DataLoader workers start
    warnings.filterwarnings("ignore", message=".*`torch_dtype` is deprecated.*")


class Terminated(BaseException):
    """SIGTERM (kill, a cluster's scheduler, torchrun stopping its workers), raised where the process is, so that
    cleanup runs: staging and scratch folders are removed, the output folder stays as it was."""


def _terminate(signum, frame):
    raise Terminated()


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the machine (or the GPU) running out of memory: MemoryError, torch's OutOfMemoryError,
    or its CPU allocator's RuntimeError."""
    text = str(error)
    return (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"
        or ("can't allocate memory" in text or "CUDA out of memory" in text)
    )


def run_cli(main, argv=None, when_stopped: str = "") -> None:
    """Run a command's main(argv): bad input (UserError) ends with one line on stderr and exit status 2; Ctrl-C and
    SIGTERM end with one line (plus `when_stopped`) and 130 / 143, after the cleanup a crash would skip."""
    setup_logging()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (MemoryError, RuntimeError) as e:
        if not out_of_memory(e):
            raise
        print(
            f"error: out of memory ({first_line(e, 120)}); lower --batch-size (--grad-accum N keeps the step and "
            f"runs it in N parts) or --max-length",
            file=sys.stderr,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted" + when_stopped, file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("stopped by SIGTERM" + when_stopped, file=sys.stderr)
        sys.exit(143)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
