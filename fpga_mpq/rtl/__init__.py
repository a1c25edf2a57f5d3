"""The RTL path: the IR traced through da4ml to pipelined Verilog, Verilator simulation, Yosys synthesis."""
