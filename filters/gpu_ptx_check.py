"""Compile every GPU kernel to PTX for a real architecture, without a GPU.

The CUDA simulator runs kernels as Python, so it never type-checks them: a kernel that
passes the simulator tests can still fail to compile for a device (a Python object, a
list, an inconsistent type). This check lowers each kernel through NVVM with the exact
argument types the wrappers pass, so those errors show up on a machine with the CUDA
toolkit's libnvvm but no GPU (this one: /usr/local/cuda-13.0).

Usage: python -m filters.gpu_ptx_check [--cc 8.0]   (NUMBA_ENABLE_CUDASIM must be unset)
Prints one line per kernel; exit status 1 when any kernel fails to compile.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time


def _use_toolkit_without_nvrtc() -> None:
    """Point numba-cuda at libnvvm/libdevice directly when NVRTC is not installed.

    numba-cuda resolves NVRTC alongside NVVM, but compiling Python kernels to PTX needs
    only NVVM and libdevice; a toolkit without NVRTC would otherwise be rejected.
    """
    from numba.cuda import cuda_paths

    try:
        cuda_paths.get_cuda_paths()
        return
    except Exception:  # noqa: BLE001 - any lookup failure: fall back to the toolkit dir
        pass
    roots = [os.environ.get("CUDA_HOME", "")] + sorted(glob.glob("/usr/local/cuda*"))
    for root in filter(None, roots):
        nvvm = (glob.glob(f"{root}/lib*/libnvvm.so*") + glob.glob(f"{root}/nvvm/lib*/libnvvm.so*"))
        libdevice = glob.glob(f"{root}/nvvm/libdevice/libdevice*.bc")
        if nvvm and libdevice:
            entry = cuda_paths._env_path_tuple
            cuda_paths.get_cuda_paths._cached_result = {
                "nvrtc": entry("pixelfleet", None),
                "nvvm": entry("pixelfleet", nvvm[0]),
                "libdevice": entry("pixelfleet", libdevice[0]),
                "cudalib_dir": entry("pixelfleet", os.path.dirname(nvvm[0])),
                "static_cudalib_dir": entry("pixelfleet", os.path.dirname(nvvm[0])),
                "include_dir": entry("pixelfleet", f"{root}/include"),
            }
            return
    raise SystemExit("no CUDA toolkit with libnvvm found (set CUDA_HOME)")


def _answer_compute_capability(cc: tuple[int, int]) -> None:
    """Device functions that numba-cuda compiles through a dispatcher at typing time (the
    overloads behind, e.g., a float32 scalar's .view, used by colour.oklab_from_srgb8) ask
    the current device for its compute capability; with no device, they get `cc`."""
    from types import SimpleNamespace

    from numba.cuda import dispatcher

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)


def kernel_signatures():
    """(name, python function, argument types) of every kernel, as the wrappers call them."""
    from numba import types

    from filters import gpu_blocks, gpu_conv, gpu_pixelate, gpu_point, gpu_resize

    u8 = types.Array(types.uint8, 3, "C")
    f32 = types.Array(types.float32, 3, "C")
    lut = types.Array(types.uint8, 1, "C")
    taps = types.Array(types.float32, 1, "C")
    idx2 = types.Array(types.int32, 2, "C")
    wts2 = types.Array(types.float32, 2, "C")
    pal = types.Array(types.uint8, 2, "C")
    sums = types.Array(types.int64, 1, "C")
    f, i32 = types.float32, types.int32
    return [
        ("lut", gpu_point._lut_kernel, (u8, lut, u8)),
        ("grayscale", gpu_point._grayscale_kernel, (u8, u8)),
        ("channel_sums", gpu_point._channel_sums_kernel, (u8, sums)),
        ("gauss_h", gpu_conv._hpass_kernel, (u8, taps, f32)),
        ("gauss_v_blur", gpu_conv._vpass_blur_kernel, (f32, taps, u8)),
        ("gauss_v_unsharp", gpu_conv._vpass_unsharp_kernel, (f32, taps, u8, f, u8)),
        ("sobel", gpu_conv._sobel_kernel, (u8, u8, f)),
        ("resize_gather", gpu_resize._gather_kernel, (u8, idx2, idx2, u8)),
        ("resample_h", gpu_resize._resample_h_kernel, (u8, idx2, wts2, f32)),
        ("resample_v", gpu_resize._resample_v_kernel, (f32, idx2, wts2, u8)),
        ("block_mean", gpu_blocks._block_mean_kernel, (u8, i32, i32, u8)),
        ("map_palette", gpu_pixelate._map_palette_kernel,
         (u8, pal, types.Array(types.float32, 2, "C"), taps, types.Array(types.float32, 2, "C"),
          f, u8)),
        ("outline", gpu_pixelate._outline_kernel, (u8, f, lut, f, types.boolean, u8)),
        ("upscale", gpu_pixelate._upscale_kernel, (u8, i32, u8)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", default="8.0", help="compute capability, e.g. 8.0 or 9.0")
    args = parser.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise SystemExit("unset NUMBA_ENABLE_CUDASIM: the simulator does not compile")
    major, minor = (int(p) for p in args.cc.split("."))
    os.environ.setdefault("NUMBA_FORCE_CUDA_CC", args.cc)  # no device to ask
    _use_toolkit_without_nvrtc()
    from numba import cuda

    _answer_compute_capability((major, minor))

    failed = 0
    for name, kernel, sig in kernel_signatures():
        start = time.perf_counter()
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(major, minor))
            f64 = sum(1 for line in ptx.splitlines() if ".f64" in line and "cvt" not in line)
            print(f"ok    {name:16s} {len(ptx):7d} bytes PTX  {f64:3d} f64 ops  "
                  f"{time.perf_counter() - start:5.2f} s")
        except Exception as exc:  # noqa: BLE001 - report every kernel, then fail
            failed += 1
            print(f"FAIL  {name:16s} {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
