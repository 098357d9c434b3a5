#ifndef C_MALLOC_TUNING_H
#define C_MALLOC_TUNING_H

#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>

/// glibc's heap thresholds, fixed (see Sources/conduit/MallocTuning.swift for why).
static inline void conduit_fix_malloc_thresholds(int mmapThreshold, int trimThreshold, int setMmap, int setTrim) {
    if (setMmap) mallopt(M_MMAP_THRESHOLD, mmapThreshold);
    if (setTrim) mallopt(M_TRIM_THRESHOLD, trimThreshold);
}

/// Hands the free memory of every arena back to the kernel.
static inline void conduit_return_free_memory(void) { malloc_trim(0); }
#else
static inline void conduit_fix_malloc_thresholds(int mmapThreshold, int trimThreshold, int setMmap, int setTrim) {}
static inline void conduit_return_free_memory(void) {}
#endif

#endif
