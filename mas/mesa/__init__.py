"""The Mesa runtime: the brains of :mod:`mas.brains` inside a synchronous Mesa model.

Entry points: :class:`mas.mesa.model.VdgModel` (one day, stepped by the market calendar) and
:func:`mas.mesa.run.run_day_mesa` (a whole day, returning the run summary).
"""
