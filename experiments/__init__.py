"""Scenarios, runners, sweeps, reports and the ``vdg`` command line. Nothing imports it."""
