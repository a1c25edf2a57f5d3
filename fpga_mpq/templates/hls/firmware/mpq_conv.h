// fpga_mpq: 2-D convolution and pooling on channels-last arrays (io_parallel), fully unrolled.
// Exact: the accumulator type holds every partial sum (each product's range contains 0, so no
// partial sum leaves the range of the whole sum), and padding is zeros (max pooling skips it).
#ifndef MPQ_CONV_H_
#define MPQ_CONV_H_

namespace mpq {

template <class data_T, class res_T, typename CONFIG_T>
void conv_2d(data_T x[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
             res_T y[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_filt],
             const typename CONFIG_T::weight_t w[CONFIG_T::filt_height * CONFIG_T::filt_width *
                                                 (CONFIG_T::n_chan / CONFIG_T::groups) * CONFIG_T::n_filt],
             const typename CONFIG_T::bias_t b[CONFIG_T::n_filt]) {
    #pragma HLS PIPELINE
    const unsigned cg = CONFIG_T::n_chan / CONFIG_T::groups, fg = CONFIG_T::n_filt / CONFIG_T::groups;
Pixel:
    for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
        for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
        Filter:
            for (unsigned f = 0; f < CONFIG_T::n_filt; f++) {
                typename CONFIG_T::accum_t acc = b[f];
                const unsigned g = f / fg;
            Window:
                for (unsigned kh = 0; kh < CONFIG_T::filt_height; kh++) {
                    for (unsigned kw = 0; kw < CONFIG_T::filt_width; kw++) {
                        const int ih = int(oh * CONFIG_T::stride_height + kh) - int(CONFIG_T::pad_top);
                        const int iw = int(ow * CONFIG_T::stride_width + kw) - int(CONFIG_T::pad_left);
                        if (ih < 0 || iw < 0 || ih >= int(CONFIG_T::in_height) || iw >= int(CONFIG_T::in_width))
                            continue; // a zero of the padding adds nothing
                        for (unsigned c = 0; c < cg; c++) {
                            acc += x[(ih * CONFIG_T::in_width + iw) * CONFIG_T::n_chan + g * cg + c] *
                                   w[((kh * CONFIG_T::filt_width + kw) * cg + c) * CONFIG_T::n_filt + f];
                        }
                    }
                }
                y[(oh * CONFIG_T::out_width + ow) * CONFIG_T::n_filt + f] = acc;
            }
        }
    }
}

// Max (padding never wins) or sum (padding adds zero) over each window, per channel.
template <class data_T, class res_T, typename CONFIG_T>
void pool_2d(data_T x[CONFIG_T::in_height * CONFIG_T::in_width * CONFIG_T::n_chan],
             res_T y[CONFIG_T::out_height * CONFIG_T::out_width * CONFIG_T::n_chan]) {
    #pragma HLS PIPELINE
Pixel:
    for (unsigned oh = 0; oh < CONFIG_T::out_height; oh++) {
        for (unsigned ow = 0; ow < CONFIG_T::out_width; ow++) {
            for (unsigned c = 0; c < CONFIG_T::n_chan; c++) {
                res_T acc = 0;
                bool first = true;
                for (unsigned kh = 0; kh < CONFIG_T::pool_height; kh++) {
                    for (unsigned kw = 0; kw < CONFIG_T::pool_width; kw++) {
                        const int ih = int(oh * CONFIG_T::stride_height + kh) - int(CONFIG_T::pad_top);
                        const int iw = int(ow * CONFIG_T::stride_width + kw) - int(CONFIG_T::pad_left);
                        if (ih < 0 || iw < 0 || ih >= int(CONFIG_T::in_height) || iw >= int(CONFIG_T::in_width))
                            continue;
                        const data_T v = x[(ih * CONFIG_T::in_width + iw) * CONFIG_T::n_chan + c];
                        if (CONFIG_T::is_max) {
                            if (first || v > acc) acc = v;
                        } else {
                            acc += v;
                        }
                        first = false;
                    }
                }
                y[(oh * CONFIG_T::out_width + ow) * CONFIG_T::n_chan + c] = acc;
            }
        }
    }
}

// A channels-last image read as one vector: the same elements in the same order.
template <class data_T, class res_T, unsigned N> void copy(data_T x[N], res_T y[N]) {
    #pragma HLS PIPELINE
    for (unsigned i = 0; i < N; i++) {
        #pragma HLS UNROLL
        y[i] = x[i];
    }
}

} // namespace mpq

#endif
