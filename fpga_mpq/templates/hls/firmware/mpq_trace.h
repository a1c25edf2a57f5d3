// fpga_mpq: per-layer output dump for `fpga-mpq csim --trace` (C simulation only, -DMPQ_TRACE).
#ifndef MPQ_TRACE_H_
#define MPQ_TRACE_H_

#ifdef MPQ_TRACE
#include <cstdio>
#include <fstream>

namespace mpq {

inline std::ofstream &trace_file() {
    static std::ofstream file;
    return file;
}

inline bool &trace_on() {
    static bool on = false;
    return on;
}

// One line per layer and sample: the layer name, then its outputs printed exactly.
template <class T> void trace(const char *name, const T *values, unsigned n) {
    if (!trace_on()) return;
    std::ofstream &f = trace_file();
    f << name;
    for (unsigned i = 0; i < n; i++) {
        char buf[40];
        std::snprintf(buf, sizeof buf, " %.17g", values[i].to_double());
        f << buf;
    }
    f << '\n';
}

} // namespace mpq
#endif

#endif
