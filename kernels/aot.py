"""Ahead-of-time compilation of recorded kernel launches for GPU targets, on any machine (no GPU
needed): Triton writes the PTX and cubin for an A100 (sm_80) or an H100/H200 (sm_90), and the
metadata says how much shared memory one program needs; ``ptxas -v`` (shipped in the triton wheel)
adds registers and spilled bytes.

    reports = compile_specs(specs, archs=(80, 90))      # [CompileReport], in a clean subprocess

The compile runs in a subprocess without ``TRITON_INTERPRET`` (the interpreter replaces Triton's
language, so nothing compiles in a process that uses it). Specs come from
``mlip.kernels.launch.record``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from mlip.kernels.launch import LaunchSpec

# the most shared memory one block may use (opt-in maximum), bytes
SHARED_MEMORY_LIMIT = {80: 166_912, 90: 232_448}
GPU_NAMES = {80: "A100 (sm_80)", 90: "H100/H200 (sm_90)"}


@dataclasses.dataclass
class CompileReport:
    spec: LaunchSpec
    arch: int
    shared: Optional[int] = None  # bytes per program
    registers: Optional[int] = None  # per thread
    spilled: Optional[int] = None  # bytes of spill stores per thread
    tf32: Optional[bool] = None  # the PTX has TF32 tensor-core products
    error: Optional[str] = None

    @property
    def limit(self) -> int:
        return SHARED_MEMORY_LIMIT[self.arch]

    @property
    def fits(self) -> bool:
        return self.error is None and self.shared is not None and self.shared <= self.limit


def _spec_to_json(spec: LaunchSpec) -> dict:
    return dataclasses.asdict(spec)


def _spec_from_json(raw: dict) -> LaunchSpec:
    return LaunchSpec(raw["module"], raw["kernel"], tuple(tuple(x) for x in raw["signature"]),
                      tuple(tuple(x) for x in raw["constexprs"]), raw["num_warps"])


def _ptxas_usage(ptx: str, target: int) -> tuple:
    """(registers, spill-store bytes) from ``ptxas -v`` on the kernel's PTX (the ptxas Triton uses)."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(target).path
    arch = re.search(r"^\.target\s+(\S+)", ptx, re.M).group(1)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        result = subprocess.run([str(ptxas), "-v", f"--gpu-name={arch}", str(source), "-o", str(Path(tmp) / "k.o")],
                                capture_output=True, text=True, check=True)
    text = result.stdout + result.stderr
    registers = re.search(r"Used (\d+) registers", text)
    spilled = re.search(r"(\d+) bytes spill stores", text)
    return int(registers.group(1)) if registers else None, int(spilled.group(1)) if spilled else 0


def _compile_one(raw: dict, arch: int) -> dict:
    """Compile one spec for sm_<arch> (runs in a worker of the clean subprocess)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = _spec_from_json(raw)
    out = {"arch": arch}
    try:
        kernel = getattr(importlib.import_module(spec.module), spec.kernel)
        constexprs = dict(spec.constexprs)
        signature = dict(spec.signature)
        signature.update({name: "constexpr" for name in constexprs})
        signature = {name: signature[name] for name in kernel.arg_names}
        compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": spec.num_warps})
        out["shared"] = int(compiled.metadata.shared)
        out["registers"], out["spilled"] = _ptxas_usage(compiled.asm["ptx"], arch)
        out["tf32"] = bool(re.search(r"\.tf32\b", compiled.asm["ptx"]))
    except Exception as error:  # noqa: BLE001 - a compile error is a result to report
        out["error"] = f"{type(error).__name__}: {error}"
    return out


def _main() -> None:
    """python -m mlip.kernels.aot JOBS.json RESULTS.json WORKERS"""
    jobs = json.loads(Path(sys.argv[1]).read_text())
    workers = int(sys.argv[3])
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_compile_one, [j["spec"] for j in jobs], [j["arch"] for j in jobs]))
    Path(sys.argv[2]).write_text(json.dumps(results))


def compile_specs(specs: Iterable[LaunchSpec], archs: Sequence[int] = (80, 90),
                  workers: Optional[int] = None) -> List[CompileReport]:
    """Compile every spec for every arch in a clean subprocess; one CompileReport each."""
    specs = list(dict.fromkeys(specs))
    jobs = [{"spec": _spec_to_json(s), "arch": a} for s in specs for a in archs]
    if not jobs:
        return []
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    with tempfile.TemporaryDirectory() as tmp:
        job_file, result_file = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        job_file.write_text(json.dumps(jobs))
        subprocess.run([sys.executable, "-m", "mlip.kernels.aot", str(job_file), str(result_file), str(workers)],
                       env=env, check=True)
        results = json.loads(result_file.read_text())
    return [CompileReport(spec=s, arch=r["arch"], shared=r.get("shared"), registers=r.get("registers"),
                          spilled=r.get("spilled"), tf32=r.get("tf32"), error=r.get("error"))
            for s, r in zip((s for s in specs for _ in archs), results)]


def table(reports: Sequence[CompileReport]) -> str:
    """One line a compilation: kernel, its block sizes, target, shared memory against the limit."""
    lines = [f"{'kernel and constexprs':<92} {'target':<18} {'shared B':>9} {'limit B':>9} {'regs':>5} "
             f"{'spill B':>7}  ok"]
    for r in reports:
        shared = "-" if r.shared is None else str(r.shared)
        lines.append(f"{r.spec.describe():<92} {GPU_NAMES[r.arch]:<18} {shared:>9} {r.limit:>9} "
                     f"{r.registers if r.registers is not None else '-':>5} "
                     f"{r.spilled if r.spilled is not None else '-':>7}  {'yes' if r.fits else 'NO'}"
                     + (f"  {r.error.splitlines()[0][:120]}" if r.error else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    _main()
