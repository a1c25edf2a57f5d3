// fpga_mpq: exact requantisation by per-channel thresholds (BatchNorm, float scale ops, bipolar or
// CEIL/UP quantizers folded at generation time). Element i is channel c = i % n_chan (channels
// last); it outputs values[c][k], where k counts the thresholds t <= x of channel c (ascending).
#ifndef MPQ_THRESHOLD_H_
#define MPQ_THRESHOLD_H_

#include "hls_stream.h"
#include "nnet_utils/nnet_types.h"

namespace mpq {

template <class data_T, class res_T, typename CONFIG_T>
void threshold(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in],
               const typename CONFIG_T::threshold_t thresholds[CONFIG_T::n_chan * CONFIG_T::n_thresholds],
               const res_T values[CONFIG_T::n_chan * (CONFIG_T::n_thresholds + 1)]) {
    #pragma HLS PIPELINE
Element:
    for (unsigned i = 0; i < CONFIG_T::n_in; i++) {
        #pragma HLS UNROLL
        const unsigned c = i % CONFIG_T::n_chan;
        unsigned k = 0;
    Compare:
        for (unsigned t = 0; t < CONFIG_T::n_thresholds; t++) {
            #pragma HLS UNROLL
            k += data[i] >= thresholds[c * CONFIG_T::n_thresholds + t];
        }
        res[i] = values[c * (CONFIG_T::n_thresholds + 1) + k];
    }
}

// io_stream: n_in / data_T::size packs (one per pixel of an image, or one vector); element j of
// pack p is element p * size + j of the tensor, whose channel is that index modulo n_chan.
template <class data_T, class res_T, typename CONFIG_T>
void threshold(hls::stream<data_T> &data, hls::stream<res_T> &res,
               const typename CONFIG_T::threshold_t thresholds[CONFIG_T::n_chan * CONFIG_T::n_thresholds],
               const typename res_T::value_type values[CONFIG_T::n_chan * (CONFIG_T::n_thresholds + 1)]) {
Pack:
    for (unsigned p = 0; p < CONFIG_T::n_in / data_T::size; p++) {
        #pragma HLS PIPELINE
        const data_T in = data.read();
        res_T out;
    Element:
        for (unsigned j = 0; j < data_T::size; j++) {
            #pragma HLS UNROLL
            const unsigned c = (p * data_T::size + j) % CONFIG_T::n_chan;
            unsigned k = 0;
        Compare:
            for (unsigned t = 0; t < CONFIG_T::n_thresholds; t++) {
                #pragma HLS UNROLL
                k += in[j] >= thresholds[c * CONFIG_T::n_thresholds + t];
            }
            out[j] = values[c * (CONFIG_T::n_thresholds + 1) + k];
        }
        res.write(out);
    }
}

} // namespace mpq

#endif
