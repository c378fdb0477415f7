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

/// Vectors of 4, 8 or 16 lanes (clang splits the wide ones into the level's registers); kernels
/// load and store them with memcpy, and never pass them to functions (that would change the
/// calling convention between levels).
typedef float abn_f4 __attribute__((vector_size(16)));
typedef float abn_f8 __attribute__((vector_size(32)));
typedef float abn_f16 __attribute__((vector_size(64)));
typedef int abn_i8 __attribute__((vector_size(32)));
typedef int abn_i16 __attribute__((vector_size(64)));
typedef double abn_d16 __attribute__((vector_size(128)));

/// Lane numbers, to mask lanes by position.
static const abn_i16 abn_lanes16 = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/// The sum of the 16 lanes of *v in a fixed order (the same at every level).
ABN_INLINE float abn_f16_total(const abn_f16 *v) {
    float s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = (*v)[i] + (*v)[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// The sum of the 16 Double lanes of *v in a fixed order.
ABN_INLINE double abn_d16_total(const abn_d16 *v) {
    double s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = (*v)[i] + (*v)[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// Defines NAME (the dispatcher) and NAME_avx512, NAME_avx2, NAME_baseline, each the body
/// NAME_body (an ABN_INLINE function) compiled for its level. PARAMS and ARGS are the
/// parenthesized parameter list and argument list.
#define ABN_DISPATCH(NAME, PARAMS, ARGS) ABN_DISPATCH_CALLING(NAME, PARAMS, ARGS, ARGS, ARGS, ARGS)

/// As ABN_DISPATCH, with the level passed first to NAME_body (a constant in each copy), for
/// kernels whose blocking depends on the level's registers.
#define ABN_DISPATCH_LEVEL(NAME, PARAMS, ARGS)                                                                           \
    ABN_DISPATCH_CALLING(NAME, PARAMS, ARGS, (ABN_AVX512, ABN_UNPARENTHESIZED ARGS), (ABN_AVX2, ABN_UNPARENTHESIZED ARGS), \
                         (ABN_BASELINE, ABN_UNPARENTHESIZED ARGS))

/// The three copies, calling NAME_body with the arguments AVX512, AVX2 and BASELINE, and the
/// dispatcher passing ARGS to the copy of the level in use.
#define ABN_UNPARENTHESIZED(...) __VA_ARGS__
#define ABN_DISPATCH_CALLING(NAME, PARAMS, ARGS, AVX512, AVX2, BASELINE) \
    ABN_TARGET_AVX512 static void NAME##_avx512 PARAMS { NAME##_body AVX512; } \
    ABN_TARGET_AVX2 static void NAME##_avx2 PARAMS { NAME##_body AVX2; } \
    static void NAME##_baseline PARAMS { NAME##_body BASELINE; } \
    void NAME PARAMS { \
        switch (abn_simd_level()) { \
        case ABN_AVX512: NAME##_avx512 ARGS; break; \
        case ABN_AVX2: NAME##_avx2 ARGS; break; \
        default: NAME##_baseline ARGS; break; \
        } \
    }

#endif
