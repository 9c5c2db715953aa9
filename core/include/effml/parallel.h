/// \file parallel.h
/// \brief Thread count of the core's OpenMP loops (1 when built without OpenMP).
#pragma once

namespace effml {

/// Threads the core's parallel loops use. Results are deterministic for a given thread count.
int num_threads();
/// Sets the thread count (n >= 1). The default is OpenMP's (OMP_NUM_THREADS or all cores).
void set_num_threads(int n);

}  // namespace effml
