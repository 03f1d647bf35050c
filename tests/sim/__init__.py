"""Tests of the simulated GPU server (`smartqueue sim`)."""
