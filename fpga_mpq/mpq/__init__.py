"""Mixed-precision search: per-quantizer widths chosen against an accuracy or hardware-cost target.

Every configuration is a :class:`~fpga_mpq.models.spec.Spec`, so a chosen design flows through
train, export and generate unchanged. The searched quantizers (groups, :mod:`fpga_mpq.mpq.widths`)
are each conv / dense layer's weights and every activation quantizer before the output: the two
operands of every multiplier, which is what the hardware cost depends on, and a residual Add's
inputs. The biases and the output quantizer keep the base spec's widths.

The methods (``uniform``, ``ptq``, ``sdq``) share one interface, ``run(problem, target) -> MethodResult``;
:func:`fpga_mpq.mpq.search.search` is the entry point.
"""
