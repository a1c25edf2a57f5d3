// fpga_mpq: fill constant arrays from exact double values at start-up (C simulation only).
#ifndef MPQ_WEIGHTS_H_
#define MPQ_WEIGHTS_H_

namespace mpq {

template <class T> bool fill(T *dst, const double *src, unsigned n) {
    for (unsigned i = 0; i < n; i++) dst[i] = src[i];  // exact: every value is a short dyadic fraction
    return true;
}

} // namespace mpq

#endif
