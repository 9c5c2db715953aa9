#include "effml/parallel.h"

#include "effml/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace effml {

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  EFFML_CHECK(n >= 1, "set_num_threads: need at least 1 thread, got " << n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

}  // namespace effml
