"""`make bench`: this queue and Asterisk's app_queue on the same load, side by side.

`python -m bench.run` starts its own hotline (state in var/bench, its own ports), loads it
with real calls through Asterisk and writes docs/benchmarks.md.
"""
