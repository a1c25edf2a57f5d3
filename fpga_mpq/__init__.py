"""fpga_mpq: mixed-precision networks from PyTorch to bit-exact FPGA HLS projects.

The commands are functions of ``fpga_mpq.api`` (``api.train``, ``api.flow``, ...); the CLI is a
thin shell over them. The subpackages are the stages: ``fpga_mpq.train`` is always the training
package, never a command.
"""
