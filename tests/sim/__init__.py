"""Tests of the simulated GPU server (`smartqueue-sim`, package smartqueue_sim)."""
