// oneDNN's C API (Debian's libdnnl-dev), for its sgemm. oneDNN runs on OpenMP (libgomp): each
// engine worker that calls it first sets its own OpenMP thread count to 1, as OpenBLAS is kept
// single-threaded, so that the workers' products do not each start a team of threads.
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <signal.h>

void omp_set_num_threads(int);

/// Blocks on the calling thread every signal but those a fault raises in the thread itself.
/// oneDNN's JIT sgemm kernels before 3.11.2 point the stack pointer into a heap buffer while
/// they run on long sums (k above a few thousand), so a signal handler entered on such a thread
/// writes its frame over the heap (seen here as `corrupted size vs. prev_size` and
/// `unaligned tcache chunk` aborts). A signal sent to the process goes to a thread that does
/// not block it instead: `SignalReceiver` keeps one.
static inline void abn_block_async_signals(void) {
    sigset_t set;
    sigfillset(&set);
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (unsigned i = 0; i < sizeof faults / sizeof faults[0]; i++) sigdelset(&set, faults[i]);
    pthread_sigmask(SIG_BLOCK, &set, 0);
}

/// dnnl_sgemm (row-major C = alpha op(A) op(B) + beta C) on the calling thread alone; the
/// thread's first call also blocks its asynchronous signals for good (see above).
static inline int abn_dnnl_sgemm(int transA, int transB, long m, long n, long k, float alpha, const float *a, long lda,
                                 const float *b, long ldb, float beta, float *c, long ldc) {
    static __thread int prepared = 0;
    if (!prepared) {
        omp_set_num_threads(1);
        abn_block_async_signals();
        prepared = 1;
    }
    return (int)dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
