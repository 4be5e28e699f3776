# Sourced by scripts/demo.sh and bench/study_pairs.sh: which OpenBLAS kernels compute.
# OpenBLAS picks its GEMM kernels for the CPU it finds (AVX-512 "SkylakeX" ones on an Intel Xeon,
# AVX2 "Zen" ones on an AMD EPYC), and the kernel sets sum in different orders, so the same
# command gives different digits (docs/results.md, "Two machines"). The documented numbers were
# computed with the Zen kernels; on any x86-64 CPU with AVX2 and FMA they are selected here, so
# those commands give the documented digits on Intel CPUs too. BLAS_KERNELS=native keeps
# OpenBLAS's own choice; an OPENBLAS_CORETYPE already set wins. `retort machine` shows the result.
if [[ -z ${OPENBLAS_CORETYPE:-} && ${BLAS_KERNELS:-zen} != native && $(uname -m) == x86_64 ]] &&
   grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Zen
fi
