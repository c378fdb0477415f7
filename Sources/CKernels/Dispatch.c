// The choice of instruction set: the best the processor has, or a lower one from ABN_SIMD.
#include "CKernels.h"
#include "Levels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int selected = 0;

int abn_simd_best_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq")) return ABN_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ABN_AVX2;
#endif
    return ABN_BASELINE;
}

const char *abn_simd_name(int level) {
    switch (level) {
    case ABN_AVX512: return "avx512";
    case ABN_AVX2: return "avx2";
    default: return "baseline";
    }
}

int abn_simd_select(int level) {
    if (level < ABN_BASELINE || level > abn_simd_best_level()) return 0;
    atomic_store(&selected, level);
    return 1;
}

int abn_simd_level(void) {
    int level = atomic_load(&selected);
    if (level != 0) return level;
    level = abn_simd_best_level();
    const char *forced = getenv("ABN_SIMD");
    if (forced != NULL) {
        for (int l = ABN_BASELINE; l <= ABN_AVX512; l++) {
            if (strcmp(forced, abn_simd_name(l)) == 0 && l < level) level = l;
        }
    }
    atomic_store(&selected, level);
    return level;
}
