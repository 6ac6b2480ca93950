"""Tests of the TF Serving test double (tests/serving_double)."""
