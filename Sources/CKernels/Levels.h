// Instruction-set levels and the target attributes that compile a kernel for each.
#ifndef ABN_LEVELS_H
#define ABN_LEVELS_H

enum { ABN_BASELINE = 1, ABN_AVX2 = 2, ABN_AVX512 = 3 };

#if defined(__x86_64__)
#define ABN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define ABN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ABN_TARGET_AVX512
#define ABN_TARGET_AVX2
#endif
#define ABN_INLINE static inline __attribute__((always_inline))

/// Defines NAME (the dispatcher) and NAME_avx512, NAME_avx2, NAME_baseline, each the body
/// NAME_body (an ABN_INLINE function) compiled for its level. PARAMS and ARGS are the
/// parenthesized parameter list and argument list.
#define ABN_DISPATCH(NAME, PARAMS, ARGS) \
    ABN_TARGET_AVX512 static void NAME##_avx512 PARAMS { NAME##_body ARGS; } \
    ABN_TARGET_AVX2 static void NAME##_avx2 PARAMS { NAME##_body ARGS; } \
    static void NAME##_baseline PARAMS { NAME##_body ARGS; } \
    void NAME PARAMS { \
        switch (abn_simd_level()) { \
        case ABN_AVX512: NAME##_avx512 ARGS; break; \
        case ABN_AVX2: NAME##_avx2 ARGS; break; \
        default: NAME##_baseline ARGS; break; \
        } \
    }

#endif
