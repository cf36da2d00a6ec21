"""Build script for the optional op library; the metadata lives in setup.cfg.

``multi_lfilter/_ops`` (``_ops.abi3.so``) holds the C kernels (``csrc/lfilter_*.c``)
and the C++ layer that registers them as PyTorch operators
(``csrc/native_ops.cpp``), built on the LibTorch stable ABI of torch 2.10
(``TORCH_TARGET_VERSION``) with CPython's limited API, so one build serves every later
torch and CPython 3.10+. Torch must be importable while building (``pip install
--no-build-isolation``, after torch: see the README). Where torch or a C/C++ compiler
is missing, or ``MULTI_LFILTER_SKIP_BUILD=1`` is set, the build warns and the package
installs without the library: the pure-tensor backends then do the work.
"""
import os
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SKIP_VARIABLE = "MULTI_LFILTER_SKIP_BUILD"
# torch 2.10 as the stable ABI's version number: (major << 56) | (minor << 48).
TORCH_TARGET_VERSION = "0x020a000000000000"
PY_LIMITED_API = "0x030a0000"  # CPython 3.10

# The kernels are plain C. No FMA contraction: they then round exactly as scipy's loop
# does and give the same bits on every instruction set (measured: no cost, the loops
# are bound by memory and dependency chains, not by arithmetic). Wider instruction
# sets are chosen at run time (target_clones), so the flags stay portable. No debug
# information (-g0 overrides Python's own -g): a smaller library, a faster build.
C_FLAGS = ["-O3", "-g0", "-std=gnu11", "-fno-math-errno", "-ffp-contract=off", "-Wno-psabi"]
CXX_FLAGS = [
    "-O2", "-g0", "-std=c++17", f"-DTORCH_TARGET_VERSION={TORCH_TARGET_VERSION}",
    f"-DPy_LIMITED_API={PY_LIMITED_API}",
]


class OptionalBuildExt(build_ext):
    """``build_ext`` that compiles C and C++ sources with their own flags and turns a
    failed build into a warning."""

    def run(self):
        if os.environ.get(SKIP_VARIABLE, "") not in ("", "0"):
            self.warn(f"multi_lfilter: op library not built ({SKIP_VARIABLE} is set); using the pure-tensor backends")
            return
        try:
            super().run()
        except Exception as error:  # no compiler at all
            self.warn(f"multi_lfilter: op library not built ({error}); using the pure-tensor backends")

    def build_extension(self, extension):
        compiler = self.compiler
        compile_sources = compiler.compile

        def compile_in_parallel(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                                extra_preargs=None, extra_postargs=None, depends=None):
            """Each source with its language's flags, one per core at a time (the C
            kernels take most of the build)."""
            macros, objects, _, preprocessor, build = compiler._setup_compile(
                output_dir, macros, include_dirs, sources, depends, extra_postargs)
            arguments = compiler._get_cc_args(preprocessor, debug, extra_preargs)

            def compile_one(obj):
                source, extension = build[obj]
                flags = C_FLAGS if source.endswith(".c") else CXX_FLAGS
                compiler._compile(obj, source, extension, arguments, flags, preprocessor)

            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                list(pool.map(compile_one, objects))
            return objects

        compiler.compile = compile_in_parallel
        try:
            super().build_extension(extension)
        except Exception as error:  # the compiler rejected the code or the flags
            self.warn(f"multi_lfilter: op library not built ({error}); using the pure-tensor backends")
        finally:
            compiler.compile = compile_sources


def op_library():
    """The op library's extension, or ``None`` where torch cannot be imported."""
    try:
        from torch.utils.cpp_extension import include_paths, library_paths
    except ImportError as error:
        print(f"multi_lfilter: op library not built (torch is needed to build it: {error})")
        return None
    return Extension(
        "multi_lfilter._ops",
        # The tile kernels come in parts (forward, adjoint, cascade adjoint) so they
        # compile at once; the longest first.
        sources=[
            "multi_lfilter/csrc/lfilter_adjoint.c",
            "multi_lfilter/csrc/lfilter_forward.c",
            "multi_lfilter/csrc/lfilter_cascade_adjoint.c",
            "multi_lfilter/csrc/native_ops.cpp",
            "multi_lfilter/csrc/varying_kernels.c",
            "multi_lfilter/csrc/lfilter_kernels.c",
        ],
        include_dirs=include_paths() + ["multi_lfilter/csrc"],
        library_dirs=library_paths(),
        libraries=["c10", "torch", "torch_cpu"],
        extra_link_args=["-pthread"],
        language="c++",
        py_limited_api=True,
    )


extension = op_library()
setup(
    ext_modules=[extension] if extension is not None else [],
    cmdclass={"build_ext": OptionalBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
