// fpga_mpq: exact pooling on pixel streams (io_stream), one nnet::array<T, n_chan> per pixel, row-major.
//
// Why not hls4ml's nnet_pooling_stream.h here: its average pool returns sum / N computed in accum_t,
// which rounds; our IR's average pool is the exact *sum* (the 1/N is folded into the next
// quantizer's scale, exactly). Its line-buffer pools also need window == stride and no padding.
// hls4ml's kernel is still used for max pools that meet those conditions (max is exact in any type).
//
// pool_2d_stream: any window, stride and padding; max (padding never wins) or sum (padding adds 0).
// A ring of pool_height input rows; when the last input row a row of outputs needs has arrived,
// that whole output row is written (a burst of out_width pixels, after each such input row).
// global_pool_stream: one window over the whole image, a running max or sum per channel.
#ifndef MPQ_POOL_STREAM_H_
#define MPQ_POOL_STREAM_H_

#include "hls_stream.h"
#include "nnet_utils/nnet_types.h"

namespace mpq {

template <class data_T, class res_T, typename CONFIG_T>
void pool_2d_stream(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typedef typename data_T::value_type in_t;
    typedef typename res_T::value_type out_t;
    const unsigned rows = CONFIG_T::pool_height;
    in_t ring[rows][CONFIG_T::in_width][CONFIG_T::n_chan];
    #pragma HLS ARRAY_PARTITION variable=ring complete dim=3
    unsigned oh = 0; // next output row to write
ReadRow:
    for (unsigned ih = 0; ih < CONFIG_T::in_height; ih++) {
    ReadPixel:
        for (unsigned iw = 0; iw < CONFIG_T::in_width; iw++) {
            #pragma HLS PIPELINE
            const data_T px = data.read();
            for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
                #pragma HLS UNROLL
                ring[ih % rows][iw][c] = px[c];
            }
        }
    WriteRows: // every output row whose window ends in this input row (the bottom padding included)
        while (oh < CONFIG_T::out_height) {
            const int last = int(oh * CONFIG_T::stride_height + CONFIG_T::pool_height - 1) - int(CONFIG_T::pad_top);
            const bool ready = last <= int(ih) || ih + 1 == CONFIG_T::in_height;
            if (!ready) break;
        WritePixel:
            for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
                #pragma HLS PIPELINE
                res_T out;
                for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
                    #pragma HLS UNROLL
                    out_t acc = 0;
                    bool first = true;
                    for (unsigned kh = 0; kh < CONFIG_T::pool_height; kh++) {
                        for (unsigned kw = 0; kw < CONFIG_T::pool_width; kw++) {
                            const int r = int(oh * CONFIG_T::stride_height + kh) - int(CONFIG_T::pad_top);
                            const int q = int(ow * CONFIG_T::stride_width + kw) - int(CONFIG_T::pad_left);
                            if (r < 0 || q < 0 || r >= int(CONFIG_T::in_height) || q >= int(CONFIG_T::in_width))
                                continue; // padding: adds zero to a sum, never wins a max
                            const in_t v = ring[r % rows][q][c];
                            if (CONFIG_T::is_max) {
                                if (first || v > acc) acc = v;
                            } else {
                                acc += v; // exact: out_t holds the sum of the whole window
                            }
                            first = false;
                        }
                    }
                    out[c] = acc;
                }
                res.write(out);
            }
            oh++;
        }
    }
}

template <class data_T, class res_T, typename CONFIG_T>
void global_pool_stream(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typedef typename res_T::value_type out_t;
    out_t acc[CONFIG_T::n_chan];
    #pragma HLS ARRAY_PARTITION variable=acc complete
Pixel:
    for (unsigned i = 0; i < CONFIG_T::in_height * CONFIG_T::in_width; i++) {
        #pragma HLS PIPELINE
        const data_T px = data.read();
        for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
            #pragma HLS UNROLL
            if (i == 0) {
                acc[c] = px[c];
            } else if (CONFIG_T::is_max) {
                if (px[c] > acc[c]) acc[c] = px[c];
            } else {
                acc[c] += px[c]; // exact: out_t holds the sum over the whole image
            }
        }
    }
    res_T out;
    for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
        #pragma HLS UNROLL
        out[c] = acc[c];
    }
    res.write(out);
}

} // namespace mpq

#endif
