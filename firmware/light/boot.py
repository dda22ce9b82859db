"""Runs first at power-up; main.py runs next. Nothing here may fail."""

import gc

gc.collect()
