"""Build script for the optional C kernels; the metadata lives in setup.cfg.

The kernels are plain C (no PyTorch or Python headers) loaded with ctypes. Where no
compiler is available the build warns and the package installs without them: the
pure-tensor backends then do the work.
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """``build_ext`` that turns a failed compilation into a warning."""

    def run(self):
        try:
            super().run()
        except Exception as error:  # no compiler at all
            self.warn(f"multi_lfilter: C kernels not built ({error}); using the pure-tensor backends")

    def build_extension(self, extension):
        try:
            super().build_extension(extension)
        except Exception as error:  # the compiler rejected the code or the flags
            self.warn(f"multi_lfilter: C kernels not built ({error}); using the pure-tensor backends")


kernels = Extension(
    "multi_lfilter._lfilter_kernels",
    sources=["multi_lfilter/csrc/lfilter_kernels.c"],
    # Portable flags: wider instruction sets are chosen at run time (target_clones).
    # No FMA contraction: the kernels then round exactly as scipy's loop does, and give
    # the same bits on every instruction set (measured: no cost, the loops are bound by
    # memory and dependency chains, not by arithmetic).
    extra_compile_args=["-O3", "-std=gnu11", "-fno-math-errno", "-ffp-contract=off", "-Wno-psabi"],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[kernels], cmdclass={"build_ext": OptionalBuildExt})
