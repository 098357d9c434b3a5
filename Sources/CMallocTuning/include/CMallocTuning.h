#ifndef C_MALLOC_TUNING_H
#define C_MALLOC_TUNING_H

#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>

/// glibc's heap thresholds, fixed (see Sources/conduit/MallocTuning.swift for why).
static inline void conduit_fix_malloc_thresholds(int mmapThreshold, int trimThreshold, int setMmap, int setTrim) {
    if (setMmap) mallopt(M_MMAP_THRESHOLD, mmapThreshold);
    if (setTrim) mallopt(M_TRIM_THRESHOLD, trimThreshold);
}
#else
static inline void conduit_fix_malloc_thresholds(int mmapThreshold, int trimThreshold, int setMmap, int setTrim) {}
#endif

#endif
