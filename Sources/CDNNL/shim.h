// oneDNN's C API (Debian's libdnnl-dev), for its sgemm. oneDNN runs on OpenMP (libgomp): each
// engine worker that calls it first sets its own OpenMP thread count to 1, as OpenBLAS is kept
// single-threaded, so that the workers' products do not each start a team of threads.
#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int);

/// dnnl_sgemm (row-major C = alpha op(A) op(B) + beta C) on the calling thread alone.
static inline int abn_dnnl_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                                 const float *b, long ldb, float beta, float *c, long ldc) {
    static __thread int single = 0;
    if (!single) {
        omp_set_num_threads(1);
        single = 1;
    }
    return (int)dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
