"""Resource and latency estimates before any vendor tool runs: the HLS design (:mod:`.hls`) and the RTL
design (:mod:`.rtl`), priced per layer (:mod:`.model`) against a part's capacities (:mod:`.parts`)."""
