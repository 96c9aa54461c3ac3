"""What a running worker serves about itself: metrics, logs, the ops page, probes and health verdicts.

Pure of Faust: the engine's web pages and timers feed and read these.
"""
