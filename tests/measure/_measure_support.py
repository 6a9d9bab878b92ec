"""Shared settings of the measurement tests."""

#: Settings that keep a full measurement against the emulator to about a second.
FAST = dict(windows=3, min_window_s=0.05, timeout_s=1.0)
