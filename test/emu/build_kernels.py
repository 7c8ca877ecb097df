#!/usr/bin/env python3
"""Builds a model's CUDA kernels as a host shared object for FakeCudaDriver.

Takes moec's CUDA translation unit (`kernels.cu`, or an artifact `.moea` to
take it from) and writes C++ that compiles against `cuda_emu.h` (the host
emulation of the CUDA execution model, docs/cuda.md "Host emulation of the
kernels"):

- every `extern "C" __global__` kernel becomes a static function, and an
  exported wrapper of the same name with FakeCudaDriver's kernel signature
  `void NAME(void **params, const unsigned *grid, const unsigned *block,
  unsigned sharedBytes)` unpacks `params` by the kernel's parameter list
  (pointers, `void *workspace`, `long long tokens`, then by-value
  `const __grid_constant__ moec_tensor_map` tensor maps) and runs the grid;
- every `__shared__` declaration is followed by a registration of its
  variables (address, size, declared alignment, name) for the poison, the
  wgmma descriptors and the TMA and mbarrier checks;
- every top-level `__device__` function with inline PTX is replaced by
  `using moec_emu::ptx::NAME;` (the header's model of that instruction), in
  place, so that the `#if` path of the architecture picks the models it uses;
  inline PTX left elsewhere is an error unless it is a known no-op;
- `__CUDA_ARCH__` (and `__CUDA_ARCH_FEAT_SM90_ALL` for sm_90a) select the
  architecture's path.

Then compiles it with `c++ -std=c++20 -O1 -shared -fPIC -pthread`.

With `--header OUT.h` it writes the same translation as a header for a test
of its own and compiles nothing: each kernel becomes a host launch
`void NAME(dim3 grid, dim3 block, PARAMS...)` (what `NAME<<<grid, block>>>
(PARAMS...)` does) instead of a FakeCudaDriver entry point. A test includes
it once, after the standard headers (cuda_emu.h defines CUDA's keywords,
`__noinline__` among them, as macros), and calls the kernels with host
pointers and, for tensor maps, moec_emu::TensorMapImage bytes
(test/lit/codegen/cuda/fp8-matmul-emulated.mlir).

Usage: build_kernels.py INPUT(.cu|.moea) OUTPUT.so [--arch sm_80|sm_89|sm_90a]
         [--cpp OUT.cpp] [--cxx c++]
       build_kernels.py INPUT(.cu|.moea) --header OUT.h [--arch ...]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH_DEFINES = {
    "sm_80": "#define __CUDA_ARCH__ 800\n",
    "sm_89": "#define __CUDA_ARCH__ 890\n",
    "sm_90a": "#define __CUDA_ARCH__ 900\n#define __CUDA_ARCH_FEAT_SM90_ALL 1\n",
}
# Inline PTX statements that need no model on the host.
NO_OP_ASM = {
    # The generic-to-async proxy fence before wgmma reads shared memory.
    'asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");':
        "/* fence.proxy.async.shared::cta: no-op on the host */",
}
KERNEL = re.compile(
    r'extern "C" __global__ void\s+(?:__launch_bounds__\((\d+)[^)]*\)\s+)?'
    r"(\w+)\s*\(")


def read_source(path):
    if path.endswith(".moea"):
        sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
        import moea  # noqa: E402
        sections = moea.read_sections(path)
        if "kernels.cu" not in sections:
            sys.exit(f"{path}: no kernels.cu section")
        return sections["kernels.cu"].decode()
    with open(path) as f:
        return f.read()


def replace_asm_functions(lines):
    """Top-level __device__ functions containing inline PTX become
    `using moec_emu::ptx::NAME;` lines."""
    out = []
    replaced = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("__device__"):
            out.append(line)
            i += 1
            continue
        # The function runs to the first "}" in column 0 (or is a one-line
        # declaration ending with ";" before any "{").
        j = i
        while j < len(lines) and lines[j] != "}" and not (
                "{" not in "".join(lines[i:j + 1])
                and lines[j].rstrip().endswith(";")):
            j += 1
        body = "\n".join(lines[i:j + 1])
        if not re.search(r"\basm\b", body):
            out.extend(lines[i:j + 1])
            i = j + 1
            continue
        name = re.search(r"(\w+)\s*\(", body).group(1)
        # Drop its template header (the lines above back to "template").
        if out and out[-1].startswith("template"):
            out.pop()
        elif out and out[-1].rstrip().endswith(">"):
            k = len(out) - 1
            while k > 0 and not out[k].startswith("template"):
                k -= 1
            if out[k].startswith("template"):
                del out[k:]
        out.append(f"using moec_emu::ptx::{name}; // inline PTX, modelled")
        replaced.append(name)
        i = j + 1
    return out, replaced


def register_shared(text):
    """Follows each `__shared__` declaration with a registration of the
    variables it declares (cuda_emu.h poisons them at every block)."""
    out, pos, count = [], 0, 0
    for m in re.finditer(r"__shared__([^;{}]*);", text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        if "//" in text[line_start:m.start()]:
            continue  # in a comment
        decl = re.sub(r"__align__\([^)]*\)", "", m.group(1))
        names = []
        for piece in split_top(decl):
            piece = piece.split("=")[0].split("[")[0]
            names.append(re.findall(r"\w+", piece)[-1])
        # __alignof__ of the variable: its declared alignment (__align__
        # included), which the swizzle checks rely on.
        regs = " ".join(
            f"static moec_emu::SharedRegistration moec_emu_shared_{count}_{n}"
            f'(&{n}, sizeof({n}), __alignof__({n}), "{n}");' for n in names)
        count += 1
        out.append(text[pos:m.end()])
        out.append(" " + regs)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def split_params(text):
    result = []
    for p in split_top(text):
        p = p.replace("__restrict__", "").strip()
        m = re.match(r"(.*?)(\w+)$", p, re.S)
        if not m:
            sys.exit(f"cannot parse kernel parameter '{p}'")
        result.append((" ".join(m.group(1).split()), m.group(2)))
    return result


def translate(source, arch, host_launch=False):
    """The C++ text of `source` for `arch` and its kernels; entry points for
    FakeCudaDriver, or with `host_launch` typed host launches."""
    for stmt, comment in NO_OP_ASM.items():
        source = source.replace(stmt, comment)
    if "extern __shared__" in source:
        sys.exit("dynamic shared memory (extern __shared__) is not emulated")
    lines, replaced = replace_asm_functions(source.split("\n"))
    text = register_shared("\n".join(lines))
    left = [ln for ln in text.split("\n")
            if re.search(r"\basm\b", ln.split("//")[0])]
    if left:
        sys.exit("inline PTX without a host model:\n" + "\n".join(left[:5]))

    kernels = []
    pieces = []
    pos = 0
    for m in KERNEL.finditer(text):
        bounds, name = m.group(1), m.group(2)
        depth, k = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            k += 1
        params = split_params(text[m.end():k - 1])
        kernels.append((name, int(bounds or 0), params))
        pieces.append(text[pos:m.start()])
        pieces.append(f"static void moec_emu_kernel_{name}(")
        pos = m.end()
    pieces.append(text[pos:])
    if not kernels:
        sys.exit("no extern \"C\" __global__ kernels found")

    header = (f"// Generated by test/emu/build_kernels.py ({arch}).\n"
              + ("#pragma once\n" if host_launch else "")
              + ARCH_DEFINES[arch]
              + f'#include "{os.path.join(HERE, "cuda_emu.h")}"\n'
              + f"// models: {', '.join(sorted(set(replaced))) or 'none'}\n")
    if host_launch:
        return (header + "".join(pieces) + "\n".join(host_launches(kernels))
                + "\n", kernels)
    wrappers = ["", "// ---- FakeCudaDriver entry points ----"]
    for name, bounds, params in kernels:
        unpack = []
        for i, (ty, pname) in enumerate(params):
            # Copied out, as cuLaunchKernel does: a by-value struct (a
            # __grid_constant__ moec_tensor_map, 64-byte aligned) may sit at
            # any address in the caller's buffer.
            unpack.append(f"  std::remove_cv_t<{ty}> {pname};\n"
                          f"  memcpy(&{pname}, params[{i}], sizeof {pname});")
        args = ", ".join(p for _, p in params)
        wrappers.append(
            f'extern "C" __attribute__((visibility("default"))) void\n'
            f"{name}(void **params, const unsigned *grid, "
            f"const unsigned *block, unsigned sharedBytes) {{\n"
            + "\n".join(unpack) + "\n"
            f"  if (sharedBytes)\n"
            f'    moec_emu::fail("dynamic shared memory (%u bytes) in '
            f'{name}", sharedBytes);\n'
            f'  moec_emu::launch("{name}", grid, block, {bounds}u, [&] {{\n'
            f"    moec_emu_kernel_{name}({args});\n"
            f"  }});\n}}")
    return header + "".join(pieces) + "\n".join(wrappers) + "\n", kernels


def host_launches(kernels):
    """`--header`: `NAME(grid, block, PARAMS...)` runs the grid, as
    `NAME<<<grid, block>>>(PARAMS...)` would (no dynamic shared memory).
    GCC notes an ABI change for the 64-byte aligned tensor maps passed by
    value (-Wno-psabi silences it)."""
    out = ["", "// ---- host launches: NAME(grid, block, kernel parameters) ----"]
    for name, bounds, params in kernels:
        decl = ", ".join(f"{ty} {pname}" for ty, pname in params)
        args = ", ".join(p for _, p in params)
        out.append(
            f"inline void {name}(dim3 grid, dim3 block, {decl}) {{\n"
            f"  const unsigned g[3] = {{grid.x, grid.y, grid.z}};\n"
            f"  const unsigned b[3] = {{block.x, block.y, block.z}};\n"
            f'  moec_emu::launch("{name}", g, b, {bounds}u, [&] {{\n'
            f"    moec_emu_kernel_{name}({args});\n"
            f"  }});\n}}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output", nargs="?")
    ap.add_argument("--arch", default="sm_89", choices=sorted(ARCH_DEFINES))
    ap.add_argument("--cpp", help="keep the generated C++ here")
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--header", help="write a header of host launches here "
                    "instead of building OUTPUT.so")
    args = ap.parse_args()
    if (args.output is None) == (args.header is None):
        ap.error("give either OUTPUT.so or --header OUT.h")

    if args.header:
        text, kernels = translate(read_source(args.input), args.arch,
                                  host_launch=True)
        with open(args.header, "w") as f:
            f.write(text)
        print(f"{args.header}: {len(kernels)} kernels ({args.arch})")
        return

    cpp, kernels = translate(read_source(args.input), args.arch)
    cpp_path = args.cpp or args.output + ".cpp"
    with open(cpp_path, "w") as f:
        f.write(cpp)
    cmd = [args.cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread",
           "-fno-strict-aliasing", "-w", cpp_path, "-o", args.output]
    if shutil.which("ccache") and os.environ.get("MOEC_EMU_CCACHE", "1") == "1":
        cmd.insert(0, "ccache")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-6000:]}")
    if not args.cpp:
        os.remove(cpp_path)
    print(f"{args.output}: {len(kernels)} kernels ({args.arch})")


if __name__ == "__main__":
    main()
