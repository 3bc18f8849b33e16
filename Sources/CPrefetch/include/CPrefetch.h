#ifndef CPREFETCH_H
#define CPREFETCH_H

/// Asks the processor to bring the cache line holding `address` into the cache ahead of a read: a hint, never a fault.
static inline void prefetchForReading(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
