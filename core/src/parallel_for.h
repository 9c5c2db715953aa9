// Private to the core: the loops of the layers, across threads or not.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace effml {

/// body(thread, begin, end) once on each thread of a team, with [begin, end) the thread's
/// contiguous share of [0, n), in thread order: a given thread count always gives each thread
/// the same items (and so the same partial sums). With `parallel` false, body(0, 0, n) on the
/// calling thread, outside the OpenMP runtime (see parallel_for, below). Returns the team's size.
/// body is copied once per thread (see below).
template <class Body>
inline int parallel_chunks(int64_t n, bool parallel, const Body& body) {
  if (!parallel) {
    body(0, int64_t{0}, n);
    return 1;
  }
  int team = 1;
#ifdef _OPENMP
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), size = omp_get_num_threads();
    if (t == 0) team = size;
    // Each thread calls its own copy: members of a closure reached through the shared one are
    // reloaded at every iteration (a store might change them), which keeps loops from
    // vectorizing; a local copy's members stay in registers.
    const Body local = body;
    local(t, n * t / size, n * (t + 1) / size);
  }
#else
  body(0, int64_t{0}, n);
#endif
  return team;
}

/// body(begin, end) over [0, n): split into contiguous static shares across the core's threads
/// when `parallel`, else body(0, n) once on the calling thread. The serial case does not enter
/// the OpenMP runtime at all: a parallel region with a false `if` clause still starts a team and
/// wakes the thread pool with a system call when it ends, which cost LeNet-5's batch-1 forward
/// (eight such regions) 12% of its time. Each i must give the same result whichever thread runs
/// it (every caller's iterations are independent), so both paths agree bit for bit. The body
/// takes a range, not one index, so that its loop is the caller's own and vectorizes; it is
/// copied (once per thread), so it should capture pointers and references, not containers.
template <class Body>
inline void parallel_for(int64_t n, bool parallel, const Body& body) {
  parallel_chunks(n, parallel, [body](int, int64_t begin, int64_t end) { body(begin, end); });
}

}  // namespace effml
